import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from agentproj.validators import TITLE_MAX_LENGTH, plain_text


class TurnStatus(models.TextChoices):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    STOPPING = "stopping"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


ACTIVE_STATUSES = (
    TurnStatus.QUEUED,
    TurnStatus.RUNNING,
    TurnStatus.WAITING_FOR_APPROVAL,
    TurnStatus.STOPPING,
)
TERMINAL_STATUSES = (TurnStatus.COMPLETED, TurnStatus.STOPPED, TurnStatus.FAILED)


class StopReason(models.TextChoices):
    USER_CANCEL = "user_cancel"
    WORKER_DRAIN = "worker_drain"
    PARENT_STOPPED = "parent_stopped"
    APPROVAL_EXPIRED = "approval_expired"


class ErrorCode(models.TextChoices):
    LLM_ERROR = "llm_error"
    TOOL_ERROR = "tool_error"
    WORKER_LOST = "worker_lost"
    MODEL_CALL_LIMIT = "model_call_limit"
    PERSISTENCE_ERROR = "persistence_error"
    INTERNAL_ERROR = "internal_error"


class EventKind(models.TextChoices):
    USER_MESSAGE = "user_message"
    ASSISTANT_MESSAGE = "assistant_message"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_GRANT_REVOKED = "approval_grant_revoked"
    STATUS = "status"
    INTERRUPT = "interrupt"
    ERROR = "error"
    # The model stopped seeing the oldest exchanges of the session: they no longer fit its
    # context window. Written once per turn that leaves something out.
    CONTEXT_TRIMMED = "context_trimmed"


class AgentSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_sessions"
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True, validators=[plain_text])
    # The last timeline sequence number handed out; bumped under this row's lock.
    last_seq = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return self.title or f"Session {self.id}"


class Turn(models.Model):
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="turns")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    index = models.PositiveIntegerField()
    user_message = models.TextField()
    status = models.CharField(max_length=24, choices=TurnStatus.choices)
    stop_reason = models.CharField(max_length=24, choices=StopReason.choices, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=200, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Times the turn was resumed because its worker died (bounded by AGENT_MAX_ATTEMPTS).
    worker_losses = models.PositiveIntegerField(default=0)
    # When its run/resume task was last handed to the broker (to redeliver a lost one).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Sent with on_busy=interrupt while the interrupted turn was still winding down: it starts
    # before the turns that were already waiting (DESIGN.md section 7).
    jumps_queue = models.BooleanField(default=False)
    checkpoint = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["session", "index"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TurnStatus.values), name="turn_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(stop_reason="")
                | Q(
                    status__in=(TurnStatus.STOPPING, TurnStatus.STOPPED),
                    stop_reason__in=StopReason.values,
                ),
                name="turn_stop_reason_only_when_stopping",
            ),
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status__in=ACTIVE_STATUSES, parent__isnull=True),
                name="one_active_turn_per_session",
            ),
            models.CheckConstraint(
                condition=~Q(status=TurnStatus.STOPPED) | ~Q(stop_reason=""),
                name="turn_stopped_has_reason",
            ),
            models.UniqueConstraint(fields=["session", "index"], name="turn_index_unique"),
        ]

    def __str__(self):
        return f"Turn {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class TimelineEvent(models.Model):
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="events")
    turn = models.ForeignKey(
        Turn, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="event_seq_unique"),
            models.UniqueConstraint(
                fields=["turn"],
                condition=Q(kind=EventKind.INTERRUPT),
                name="one_interrupt_per_turn",
            ),
            models.CheckConstraint(condition=Q(kind__in=EventKind.values), name="event_kind_valid"),
        ]

    def __str__(self):
        return f"{self.kind} #{self.seq}"
