"""The chat page's timeline, drawn on the server.

Every event kind has its template partial (``templates/sessions/events/<kind>.html``). The page
renders the whole timeline through them, and the session socket renders each live event through
the same ones (``live_fragments``), so the page script only places what it is sent, appends
live text deltas and drives the buttons. Statuses, labels and the wording of decisions live here
and in the templates, nowhere else.

What one event changes elsewhere on the page travels with it as ``updates``: fragments that
replace the element with the same id (an approval card's state after a decision or a stop, the
session's grants after one is made or revoked).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from agentproj.vocabulary import (
    ACTIVE_STATUSES,
    PAGE_LIMITS,
    STOPPABLE_STATUSES,
    TERMINAL_STATUSES,
    TURN_STATUS_LABELS,
    EventKind,
    TurnStatus,
)
from approvals_app import selectors
from sessions_app.core import rendering
from sessions_app.core.events import EventPayload, serialize_event
from sessions_app.models import AgentSession, TimelineEvent

S = TurnStatus


def match_conditions(match: dict) -> str:
    """How a grant's match reads: ``to is "x@example.com"`` per field, in name order."""
    return " and ".join(
        f"{name} is {json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
        for name, value in sorted(match.items())
    )


def pretty(value: Any) -> str:
    """JSON as the page shows it. Keys are sorted: PostgreSQL's jsonb keeps no order, and a page
    drawn from stored rows must read the same on every backend as one drawn live."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def render_grants(session_id, *, can_decide: bool) -> str:
    grants = [
        {"grant": grant, "conditions": match_conditions(grant.match)}
        for grant in selectors.session_grants(session_id)
    ]
    return render_to_string(
        "sessions/_grants.html",
        {"session_id": session_id, "grants": grants, "can_decide": can_decide},
    )


# Turns


def foot_context(turn_id: int, status: dict[str, Any] | None, seq: int) -> dict[str, Any]:
    """A turn's foot: its status chip, what it cost once it ended, and for a stopped or failed
    top-level turn the actions that try again (the page offers them on the last turn only)."""
    data = status or {"status": S.QUEUED}
    code = data.get("status", S.QUEUED)
    label = TURN_STATUS_LABELS.get(code, code)
    if code == S.FAILED and data.get("error"):
        label = f"{label}: {data['error']}"
    usage = data.get("usage") or {}
    tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    duration_ms = data.get("duration_ms")
    return {
        "turn_id": turn_id,
        "seq": seq,
        "status": code,
        "label": label,
        "stop_reason": str(data.get("stop_reason") or "").replace("_", " "),
        "active": code in ACTIVE_STATUSES,
        "stoppable": code in STOPPABLE_STATUSES,
        "tokens": tokens,
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "seconds": None if duration_ms is None else f"{duration_ms / 1000:.1f}",
        "retry": code in (S.STOPPED, S.FAILED) and not data.get("parent"),
    }


def render_foot(turn_id: int, status: dict[str, Any] | None, seq: int) -> str:
    return render_to_string("sessions/events/status.html", foot_context(turn_id, status, seq))


@dataclass
class TurnView:
    id: int
    seq: int
    parent: int | None = None
    task: str = ""
    status: dict[str, Any] | None = None
    status_seq: int = 0
    items: list["str | TurnView"] = field(default_factory=list)

    def render(self) -> SafeString:
        items = [item.render() if isinstance(item, TurnView) else item for item in self.items]
        return mark_safe(
            render_to_string(
                "sessions/_turn.html",
                {
                    "turn": self,
                    "items": items,
                    "foot": render_foot(self.id, self.status, self.status_seq),
                },
            )
        )


def render_shell(event: EventPayload) -> str:
    """An empty turn for the page to put a live event of a turn it has not seen yet into."""
    data = event["data"] if event["kind"] == EventKind.STATUS else {}
    view = TurnView(id=event["turn"], seq=event["seq"], parent=data.get("parent"))
    view.task = str(data.get("task") or "")
    return view.render()


# Approvals


def approval_view(
    requested: dict[str, Any],
    decisions: list[dict[str, Any]],
    turn_status: dict[str, Any] | None,
) -> dict[str, Any]:
    """Where an approval request stands, from its events: the latest decision, and the turn's
    status for a request that ended without one (cancelled by a stop, or expired)."""
    latest = decisions[-1] if decisions else None
    final = latest is not None and latest.get("status") != "pending"
    arguments = requested.get("arguments") or {}
    for decision in decisions:
        if decision.get("edited_arguments"):
            arguments = decision["edited_arguments"]
    status = (turn_status or {}).get("status")
    if latest is not None and not final:
        state = "pending"
        text = (
            f"Approved by {latest.get('decided_by')} "
            f"({latest.get('approvals_given')} of {latest.get('approvals_needed')})"
        )
    elif latest is not None:
        state = latest.get("decision")
        text = f"{'Approved' if state == 'approved' else 'Rejected'} by {latest.get('decided_by')}"
        if latest.get("reason"):
            text += f": {latest['reason']}"
    elif status in TERMINAL_STATUSES:
        expired = (turn_status or {}).get("stop_reason") == "approval_expired"
        state, text = ("expired", "Expired") if expired else ("cancelled", "Cancelled")
    else:
        state, text = "pending", "Waiting for approval"
    return {
        "id": requested.get("approval"),
        "state": state,
        "text": text,
        "decidable": not final and status == S.WAITING_FOR_APPROVAL,
        "arguments": arguments,
        # In the order the page shows them (see ``pretty``): the editor starts from these.
        "arguments_json": json.dumps(arguments, ensure_ascii=False, sort_keys=True),
        "fields": sorted(arguments),
    }


def render_approval_state(view: dict[str, Any]) -> str:
    return render_to_string("sessions/_approval_state.html", {"approval": view})


def decision_text(data: dict[str, Any]) -> str:
    approved = data.get("decision") == "approved"
    text = f"{'Approved' if approved else 'Rejected'} by {data.get('decided_by')}"
    if data.get("status") == "pending":
        text += f" ({data.get('approvals_given')} of {data.get('approvals_needed')})"
    grant = data.get("grant")
    # A number names the grant that let this call through; an object is a grant being made.
    if isinstance(grant, int) and not isinstance(grant, bool):
        text += " (approved for this session)"
    elif isinstance(grant, dict):
        conditions = match_conditions(grant.get("match") or {})
        text += ", and for the rest of this session" + (f" when {conditions}" if conditions else "")
    if data.get("reason"):
        text += f": {data['reason']}"
    return text


def rejudged_text(data: dict[str, Any]) -> str:
    """How an edit's decision names the rule that judged the edited call, and what the request
    needs since (see ``approvals_app.records.Needs.after_edit``); "" for older events."""
    policy = data.get("policy")
    if not isinstance(policy, dict):
        return ""
    judge = f'The rule "{policy.get("name")}"' if policy.get("rule") else "The tool's default"
    needed = data.get("approvals_needed")
    needs = f"{needed} approver{'' if needed == 1 else 's'}"
    if data.get("group"):
        needs += f" from {data['group']}"
    if data.get("allow_self_approval") is False:
        needs += ", not the requester"
    return f"{judge} judged the call as edited: it needs {needs}."


# Items


def _number(value: Any) -> Any:
    """A count as people write it: 1, not 1.0 (MCP reports progress as floats)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def progress_text(data: dict[str, Any]) -> str:
    text = f"Progress {_number(data.get('progress'))}"
    if data.get("total"):
        text += f" of {_number(data['total'])}"
    if data.get("message"):
        text += f": {data['message']}"
    return text


def render_progress(event: EventPayload) -> str:
    return render_to_string(
        "sessions/events/tool_progress.html",
        {
            "seq": event["seq"],
            "call": event["data"].get("tool_call_id"),
            "text": progress_text(event["data"]),
        },
    )


def render_item(
    event: EventPayload,
    *,
    can_decide: bool,
    approval: dict[str, Any] | None = None,
    progress: str = "",
    has_approval: bool = False,
) -> str:
    """One event's item, through its kind's partial."""
    data = event["data"]
    context: dict[str, Any] = {
        "event": event,
        "data": data,
        "can_decide": can_decide,
        "approval": approval,
        "progress": mark_safe(progress),
        "has_approval": has_approval,
        "limits": PAGE_LIMITS,
    }
    kind = event["kind"]
    if kind == EventKind.ASSISTANT_MESSAGE:
        # A final message brings the HTML stored with it; only the text so far of a streaming
        # one is rendered here, as it is drawn.
        html = event.get("html")
        if html is None:
            html = rendering.assistant_html(str(data.get("text") or ""))
        context["html"] = mark_safe(html)
    elif kind in (EventKind.TOOL_CALL, EventKind.APPROVAL_REQUESTED):
        context["arguments"] = pretty(data.get("arguments"))
    elif kind == EventKind.TOOL_RESULT:
        context["result"] = pretty(data.get("result"))
    elif kind == EventKind.APPROVAL_DECIDED:
        context["text"] = decision_text(data)
        context["edited"] = pretty(data.get("edited_arguments"))
        context["rejudged"] = rejudged_text(data)
    if approval is not None:
        context["approval_state"] = mark_safe(render_approval_state(approval))
    return render_to_string(f"sessions/events/{kind}.html", context)


# The whole page


@dataclass
class PageTimeline:
    html: SafeString
    last_seq: int
    empty: bool


def session_timeline(session: AgentSession, *, can_decide: bool) -> PageTimeline:
    rows = TimelineEvent.objects.filter(session=session).order_by("seq")
    return page_timeline([serialize_event(row) for row in rows], can_decide=can_decide)


def page_timeline(events: list[EventPayload], *, can_decide: bool) -> PageTimeline:
    """The timeline of a session's events (in seq order): turns with their items, a sub-agent's
    turn inside its parent's, each turn's foot from its latest status."""
    turns: dict[int, TurnView] = {}
    requested: dict[Any, dict[str, Any]] = {}
    decisions: dict[Any, list[dict[str, Any]]] = {}
    progress: dict[Any, EventPayload] = {}
    calls: set[Any] = set()
    for event in events:
        data, kind = event["data"], event["kind"]
        if kind == EventKind.APPROVAL_REQUESTED:
            requested[data.get("approval")] = data
        elif kind == EventKind.APPROVAL_DECIDED:
            decisions.setdefault(data.get("approval"), []).append(data)
        elif kind == EventKind.TOOL_PROGRESS:
            progress[data.get("tool_call_id")] = event
        elif kind == EventKind.TOOL_CALL:
            calls.add(data.get("tool_call_id"))
        elif kind == EventKind.STATUS and event["turn"] is not None:
            view = turns.get(event["turn"])
            if view is None:
                view = turns[event["turn"]] = TurnView(id=event["turn"], seq=event["seq"])
            view.status, view.status_seq = data, event["seq"]
            view.parent = view.parent or data.get("parent")
            view.task = view.task or str(data.get("task") or "")
    approval_calls = {data.get("tool_call_id") for data in requested.values()}

    top: list[str | TurnView] = []
    placed: set[int] = set()
    for event in events:
        turn_id = event["turn"]
        view = None
        if turn_id is not None:
            view = turns.setdefault(turn_id, TurnView(id=turn_id, seq=event["seq"]))
            if turn_id not in placed:
                placed.add(turn_id)
                view.seq = event["seq"]
                parent = turns.get(view.parent) if view.parent else None
                (parent.items if parent is not None else top).append(view)
        kind, data = event["kind"], event["data"]
        if kind == EventKind.STATUS:
            continue
        if kind == EventKind.TOOL_PROGRESS:
            if data.get("tool_call_id") in calls:
                continue
            html = render_progress(event)
        else:
            approval = None
            if kind == EventKind.APPROVAL_REQUESTED:
                approval = approval_view(
                    data,
                    decisions.get(data.get("approval"), []),
                    view.status if view else None,
                )
            latest = progress.get(data.get("tool_call_id")) if kind == EventKind.TOOL_CALL else None
            html = render_item(
                event,
                can_decide=can_decide,
                approval=approval,
                progress=render_progress(latest) if latest else "",
                has_approval=kind == EventKind.TOOL_CALL
                and data.get("tool_call_id") in approval_calls,
            )
        (view.items if view is not None else top).append(html)
    rendered = [item.render() if isinstance(item, TurnView) else item for item in top]
    return PageTimeline(
        html=mark_safe("".join(rendered)),
        last_seq=events[-1]["seq"] if events else 0,
        empty=not events,
    )


# Live events


def needs_database(event: EventPayload) -> bool:
    """Whether the live fragments of ``event`` read other rows (a few kinds, rarely sent)."""
    kind = event["kind"]
    return kind in (
        EventKind.APPROVAL_REQUESTED,
        EventKind.APPROVAL_DECIDED,
        EventKind.APPROVAL_GRANT_REVOKED,
    ) or (kind == EventKind.STATUS and event["data"].get("status") in TERMINAL_STATUSES)


def live_fragments(event: EventPayload, *, can_decide: bool, grants_html=None) -> dict[str, Any]:
    """What the page needs to show a live event: ``fragment`` (its item, or its turn's foot for a
    status, or the progress line inside its call), ``shell`` (its turn, when the page has not
    seen it yet) and ``updates`` (see the module docstring). Reads rows when
    ``needs_database(event)``; ``grants_html`` renders the session's grants."""
    kind, data = event["kind"], event["data"]
    fragments: dict[str, Any] = {"updates": []}
    if event["turn"] is not None:
        fragments["shell"] = render_shell(event)
    if kind == EventKind.STATUS:
        fragments["fragment"] = render_foot(event["turn"], data, event["seq"])
        if data.get("status") in TERMINAL_STATUSES:
            fragments["updates"] = [
                render_approval_state(view) for view in _turn_approvals(event["turn"]).values()
            ]
    elif kind == EventKind.TOOL_PROGRESS:
        fragments["fragment"] = render_progress(event)
    elif kind == EventKind.APPROVAL_REQUESTED:
        approval = _turn_approvals(event["turn"]).get(data.get("approval"))
        fragments["fragment"] = render_item(
            event, can_decide=can_decide, approval=approval or approval_view(data, [], None)
        )
    else:
        fragments["fragment"] = render_item(event, can_decide=can_decide)
    if kind == EventKind.APPROVAL_DECIDED:
        approval = _turn_approvals(event["turn"]).get(data.get("approval"))
        if approval is not None:
            fragments["updates"].append(render_approval_state(approval))
    if grants_html is not None and (
        kind == EventKind.APPROVAL_GRANT_REVOKED
        or (kind == EventKind.APPROVAL_DECIDED and isinstance(data.get("grant"), dict))
    ):
        fragments["updates"].append(grants_html())
    return fragments


def _turn_approvals(turn_id: int) -> dict[Any, dict[str, Any]]:
    """The approval cards of a turn as they stand now, by approval id."""
    rows = TimelineEvent.objects.filter(
        turn_id=turn_id,
        kind__in=(EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED, EventKind.STATUS),
    ).order_by("seq")
    requested: dict[Any, dict[str, Any]] = {}
    decisions: dict[Any, list[dict[str, Any]]] = {}
    status = None
    for row in rows:
        if row.kind == EventKind.APPROVAL_REQUESTED:
            requested[row.data.get("approval")] = row.data
        elif row.kind == EventKind.APPROVAL_DECIDED:
            decisions.setdefault(row.data.get("approval"), []).append(row.data)
        else:
            status = row.data
    return {
        approval: approval_view(data, decisions.get(approval, []), status)
        for approval, data in requested.items()
    }
