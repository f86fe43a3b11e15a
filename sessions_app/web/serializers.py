"""The sessions API's serializers: what each endpoint takes and gives. The title's and the
message's rules are the model's and the validators', shared with the pages and the admin."""

from django.conf import settings
from django.db import models
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from agentproj.api import StrictCharField, StrictPrimaryKeyRelatedField
from agentproj.validators import plain_text, plain_text_with_content
from agentproj.vocabulary import CANCEL_REASON_MAX_LENGTH
from sessions_app.core import lifecycle, selectors
from sessions_app.models import Agent, AgentSession, Turn


class TurnOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Turn
        fields = [
            "id",
            "session",
            "parent",
            "index",
            "user_message",
            "status",
            "stop_reason",
            "error_code",
            "cancel_requested_at",
            "created_at",
            "started_at",
            "finished_at",
            "usage",
            "version_of",
            "shown",
        ]


class AgentRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = ["id", "name"]
        read_only_fields = fields


class AgentOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = ["id", "name", "is_default"]
        read_only_fields = fields


class SessionOutSerializer(serializers.ModelSerializer):
    agent = AgentRefSerializer(read_only=True)
    status = serializers.SerializerMethodField()
    turn_status = serializers.SerializerMethodField()
    active_turn = serializers.SerializerMethodField()

    class Meta:
        model = AgentSession
        fields = [
            "id",
            "title",
            "agent",
            "status",
            "turn_status",
            "active_turn",
            "created_at",
            "updated_at",
        ]

    def _active(self, session) -> Turn | None:
        if hasattr(session, "active_turns"):
            return selectors.active_turn_of(session)
        return selectors.session_active_turn(session)

    def get_status(self, session) -> str:
        return selectors.session_status(self._active(session))

    def get_turn_status(self, session) -> str | None:
        active = self._active(session)
        return active.status if active else None

    def get_active_turn(self, session) -> int | None:
        active = self._active(session)
        return active.pk if active else None


class SessionInSerializer(serializers.ModelSerializer):
    """The title's rules are the model field's, shared with the page's form and the admin."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
    }
    serializer_related_field = StrictPrimaryKeyRelatedField

    class Meta:
        model = AgentSession
        fields = ["title", "agent"]
        extra_kwargs = {
            # The rules judge the title as sent; the service strips what it stores.
            "title": {"trim_whitespace": False},
            "agent": {
                "required": False,
                "help_text": "The agent profile's id (GET /api/agents/); else the default one.",
            },
        }


class SessionRenameInSerializer(SessionInSerializer):
    """The title's rules as on create; a blank title names the session by its id again."""

    class Meta(SessionInSerializer.Meta):
        fields = ["title"]
        extra_kwargs = {"title": {"trim_whitespace": False, "required": True}}


class TurnInSerializer(serializers.Serializer):
    # Judged as sent (a space-only message is refused by the pattern), stored stripped.
    message = StrictCharField(
        max_length=settings.AGENT_MAX_MESSAGE_CHARS,
        trim_whitespace=False,
        validators=[plain_text_with_content],
    )
    on_busy = serializers.ChoiceField(choices=lifecycle.ON_BUSY_CHOICES, default="reject")


class RegenerateInSerializer(serializers.Serializer):
    # The rules of a sent message: an edit is the message sent again.
    message = StrictCharField(
        max_length=settings.AGENT_MAX_MESSAGE_CHARS,
        required=False,
        trim_whitespace=False,
        validators=[plain_text_with_content],
        help_text="The message as edited; left out, the turn's own message again.",
    )


class CancelInSerializer(serializers.Serializer):
    reason = StrictCharField(
        max_length=CANCEL_REASON_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        validators=[plain_text],
    )
    turn = serializers.IntegerField(required=False, min_value=1)


class CancelQuerySerializer(serializers.Serializer):
    wait = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Hold the answer until the turn is terminal (bounded).",
    )


CancelOutSerializer = inline_serializer(
    "CancelResult", {"turn": serializers.IntegerField(), "status": serializers.CharField()}
)


class EventOutSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    turn = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField()
    data = serializers.JSONField()
    created_at = serializers.DateTimeField()
    html = serializers.CharField(
        required=False,
        help_text="Assistant messages that no longer stream: the text as sanitised HTML "
        "(Markdown rendered, raw HTML escaped, links to http, https and mailto only).",
    )


class EventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="Only events with a larger seq."
    )


EventsOutSerializer = inline_serializer(
    "EventList",
    {"results": EventOutSerializer(many=True), "has_more": serializers.BooleanField()},
)
