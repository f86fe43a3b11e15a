"""``GET /api/usage/`` (DESIGN §6b): tokens and cost a row per user, agent, model or day. The
question it answers (``UsageQuerySerializer``, ``usage_asked``) is the usage page's too."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.core.exceptions import PermissionDenied
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agentproj.api import AUTH_ERRORS, ErrorSerializer, query_params
from sessions_app.core import usage

VIEW_EVERYONES_USAGE = "sessions_app.view_usage"


def can_view_everyones_usage(user) -> bool:
    """Superusers and holders of ``view_usage`` (as a group's member too) see everyone's."""
    return user.is_active and user.has_perm(VIEW_EVERYONES_USAGE)


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(
        required=False,
        help_text="First day (ISO date); default the first of the month of `to`, or of this month.",
    )
    to = serializers.DateField(
        required=False,
        help_text="Last day, included (ISO date); default the last of the month of `from`, or "
        "of this month.",
    )
    group_by = serializers.ChoiceField(choices=usage.GROUPINGS, default="day")
    user = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Only this user's usage; another user's needs the view_usage permission.",
    )

    def get_fields(self):
        # The contract's name is ``from``, which Python keeps for itself.
        fields = super().get_fields()
        fields["from"] = fields.pop("start")
        return fields

    def validate(self, data):
        # A period given by one end is that end's month; by neither, this month. The answer has
        # a row per user, agent, model or day that has usage, however long the period.
        start, end = data.get("from"), data.get("to")
        month_of = end or start or timezone.localdate()
        start = start or month_of.replace(day=1)
        end = end or (month_of.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(
            days=1
        )
        if end < start:
            raise serializers.ValidationError({"to": "The last day comes before the first."})
        return {**data, "from": start, "to": end}


@dataclass(frozen=True)
class UsageAsked:
    start: date
    end: date
    group_by: str
    # Whose usage: one user's, or (None) everyone's.
    user_id: int | None


def usage_asked(user, data: dict) -> UsageAsked:
    """What ``user`` asked to see (``UsageQuerySerializer``'s data): their own usage, or with
    the right everyone's or one user's; ``PermissionDenied`` for another's without it."""
    everyone = can_view_everyones_usage(user)
    wanted = data.get("user")
    if wanted is not None and wanted != user.pk and not everyone:
        raise PermissionDenied
    return UsageAsked(
        start=data["from"],
        end=data["to"],
        group_by=data["group_by"],
        user_id=wanted if wanted is not None else (None if everyone else user.pk),
    )


def usage_rows(asked: UsageAsked) -> list[usage.UsageRow]:
    return usage.usage_report(
        start=asked.start, end=asked.end, group_by=asked.group_by, user_id=asked.user_id
    )


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The username, agent name, model or ISO date.")
    user = serializers.IntegerField(
        source="user_id", allow_null=True, help_text="The user's id, by user."
    )
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField(help_text="Of the input, read from a prompt cache.")
    calls = serializers.IntegerField()
    estimated_calls = serializers.IntegerField(
        help_text="Calls whose tokens are estimated (the server reported none, or a stop cut "
        "the answer short): a token for every four characters."
    )
    cost = serializers.SerializerMethodField(
        help_text="What the priced calls cost (a decimal string); null when none has a price "
        "or their currencies differ."
    )
    currency = serializers.CharField()

    def get_cost(self, row: usage.UsageRow) -> str | None:
        return None if row.cost is None else usage.format_cost(row.cost)


class UsageOutSerializer(serializers.Serializer):
    start = serializers.DateField()
    to = serializers.DateField()
    group_by = serializers.CharField()
    results = UsageRowSerializer(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("start")
        return dict(sorted(fields.items(), key=lambda item: item[0] != "from"))


class UsageApi(APIView):
    @extend_schema(
        parameters=[UsageQuerySerializer],
        responses={200: UsageOutSerializer, 400: ErrorSerializer, **AUTH_ERRORS},
        summary="Read usage and cost",
        description="Tokens and cost of the model calls from `from` to `to` (days in the "
        "server's time zone, both included; default this month), a row per `user`, `agent`, "
        "`model` or `day`. A user gets their own usage; superusers and holders of the "
        "`view_usage` permission get everyone's, or one user's with `user`. 403 for another "
        "user's usage without that right.",
    )
    def get(self, request):
        query = UsageQuerySerializer(data=query_params(request))
        query.is_valid(raise_exception=True)
        asked = usage_asked(request.user, query.validated_data)
        rows = usage_rows(asked)
        return Response(
            {
                "from": asked.start,
                "to": asked.end,
                "group_by": asked.group_by,
                "results": UsageRowSerializer(rows, many=True).data,
            }
        )
