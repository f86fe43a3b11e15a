"""The usage page (``/usage/``) and its CSV: ``GET /api/usage/``'s answer for people, with a bar
chart drawn here as SVG (no script, nothing the CSP refuses) and the viewer's budgets."""

import csv
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from agentproj.vocabulary import BudgetUnit
from sessions_app.core import budgets, usage
from sessions_app.web.usage_api import (
    UsageAsked,
    UsageQuerySerializer,
    can_view_everyones_usage,
    usage_asked,
    usage_rows,
)

# The chart's drawing units (its viewBox; it scales to the page's width).
CHART_WIDTH = 640
LABEL_WIDTH = 160
VALUE_WIDTH = 110
BAR_HEIGHT = 18
BAR_GAP = 8
LABEL_CHARS = 22
# What a spreadsheet would run as a formula at the start of a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Bar:
    label: str
    title: str
    y: float
    text_y: float
    input_width: float
    output_x: float
    output_width: float
    value_x: float
    value: str


def chart_bars(rows: list[usage.UsageRow]) -> list[Bar]:
    """A bar per row, its input and output tokens end to end, scaled to the largest."""
    largest = max((row.tokens for row in rows), default=0) or 1
    scale = (CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH) / largest
    bars = []
    for index, row in enumerate(rows):
        y = index * (BAR_HEIGHT + BAR_GAP)
        input_width = round(row.input_tokens * scale, 1)
        output_width = round(row.output_tokens * scale, 1)
        label = row.key if len(row.key) <= LABEL_CHARS else row.key[: LABEL_CHARS - 1] + "…"
        bars.append(
            Bar(
                label=label,
                title=f"{row.key}: {row.input_tokens:,} tokens in, {row.output_tokens:,} out",
                y=y,
                text_y=y + BAR_HEIGHT - 4,
                input_width=input_width,
                output_x=LABEL_WIDTH + input_width,
                output_width=output_width,
                value_x=LABEL_WIDTH + input_width + output_width + 6,
                value=f"{row.tokens:,}",
            )
        )
    return bars


def _asked(request) -> tuple[UsageAsked | None, dict]:
    query = UsageQuerySerializer(data=request.GET.dict())
    if not query.is_valid():
        return None, query.errors
    return usage_asked(request.user, query.validated_data), {}


def _query_string(asked: UsageAsked, **changes) -> str:
    params = QueryDict(mutable=True)
    values = {
        "from": asked.start.isoformat(),
        "to": asked.end.isoformat(),
        "group_by": asked.group_by,
        "user": asked.user_id if asked.user_id is not None else "",
        **changes,
    }
    params.update({name: value for name, value in values.items() if value != ""})
    return params.urlencode()


def _standing_lines(user) -> list[dict]:
    """The viewer's budgets, what is used of each and when it starts again."""
    lines = []
    for standing in budgets.budget_state(user_id=user.pk).standings:
        limit = standing.limit
        if limit.unit == BudgetUnit.TOKENS:
            amount, used, left = (
                f"{int(value):,} tokens"
                for value in (limit.amount, standing.spent, standing.remaining)
            )
        else:
            amount, used, left = (
                f"{usage.readable_cost(value)} {limit.currency}"
                for value in (limit.amount, standing.spent, standing.remaining)
            )
        lines.append(
            {
                "amount": amount,
                "period": limit.period,
                "source": limit.source,
                "used": used,
                "left": left,
                "exhausted": standing.exhausted,
                "resets_at": standing.resets_at,
            }
        )
    return lines


@login_required
def usage_page(request):
    asked, errors = _asked(request)
    if asked is None:
        return render(request, "usage/page.html", {"errors": errors}, status=400)
    rows = usage_rows(asked)
    totals = usage.UsageRow(
        key="",
        user_id=None,
        input_tokens=sum(row.input_tokens for row in rows),
        output_tokens=sum(row.output_tokens for row in rows),
        cached_tokens=sum(row.cached_tokens for row in rows),
        calls=sum(row.calls for row in rows),
        estimated_calls=sum(row.estimated_calls for row in rows),
        cost=None,
        currency="",
    )
    bars = chart_bars(rows)
    return render(
        request,
        "usage/page.html",
        {
            "asked": asked,
            "everyone": can_view_everyones_usage(request.user),
            "rows": [
                {
                    "row": row,
                    "cost": "" if row.cost is None else usage.readable_cost(row.cost),
                    "only_theirs": row.user_id is not None
                    and f"?{_query_string(asked, user=row.user_id, group_by='day')}",
                }
                for row in rows
            ],
            "totals": totals,
            "bars": bars,
            "chart": {
                "width": CHART_WIDTH,
                "height": max(len(bars) * (BAR_HEIGHT + BAR_GAP), BAR_HEIGHT),
                "label_x": LABEL_WIDTH - 6,
                "bar_x": LABEL_WIDTH,
                "bar_height": BAR_HEIGHT,
            },
            "groupings": usage.GROUPINGS,
            "csv_url": f"{reverse('usage-csv')}?{_query_string(asked)}",
            "everyone_url": f"?{_query_string(asked, user='')}",
            "budgets": _standing_lines(request.user),
        },
    )


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@login_required
def usage_csv(request):
    asked, _ = _asked(request)
    if asked is None:
        return HttpResponse(
            "The period is not valid.", status=400, content_type="text/plain; charset=utf-8"
        )
    rows = usage_rows(asked)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{asked.start}-{asked.end}-by-{asked.group_by}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(
        [
            asked.group_by,
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "calls",
            "estimated_calls",
            "cost",
            "currency",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                _cell(row.key),
                row.input_tokens,
                row.output_tokens,
                row.cached_tokens,
                row.calls,
                row.estimated_calls,
                "" if row.cost is None else usage.format_cost(row.cost),
                row.currency,
            ]
        )
    return response
