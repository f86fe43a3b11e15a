import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from agentproj.validators import one_line_text
from agentproj.vocabulary import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    TITLE_MAX_LENGTH,
    BudgetPeriod,
    BudgetUnit,
    EventKind,
    StopReason,
    TurnStatus,
)
from sessions_app.core.agents import validate_tool_entries


class Agent(models.Model):
    """A profile a session talks to: its instructions, model, tools and limits. Turns keep a
    snapshot of it (``snapshot``), so an edit applies to turns created after it."""

    # Shown on one line wherever a profile is named (the page's picker, the admin, the API).
    name = models.CharField(max_length=100, unique=True, validators=[one_line_text])
    instructions = models.TextField(
        blank=True, help_text="The system prompt. Left empty, the model gets none."
    )
    model = models.CharField(
        max_length=200, blank=True, help_text="Model name sent to the LLM server; empty: LLM_MODEL."
    )
    tools = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_tool_entries],
        # No angle brackets: the admin shows help texts as HTML.
        help_text='A JSON list of the tools it may use: built-in tool names such as "get_time"; '
        '"time__get_current_time" for the tool get_current_time of the MCP server named "time"; '
        '"time__*" for all of that server\'s tools.',
    )
    all_tools = models.BooleanField(
        default=False,
        help_text="May use every tool, including every configured MCP server's (the list of "
        "tools is then not used).",
    )
    max_model_calls = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Model calls per turn; empty: AGENT_MAX_MODEL_CALLS.",
    )
    context_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1000)],
        help_text="The model's context window in tokens; empty: AGENT_CONTEXT_TOKENS.",
    )
    answer_reserve_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens of the window kept for the answer; empty: AGENT_ANSWER_RESERVE_TOKENS.",
    )
    is_default = models.BooleanField(
        default=False, help_text="The profile of a session created without choosing one."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_agent"
            ),
            models.CheckConstraint(
                condition=Q(max_model_calls__isnull=True) | Q(max_model_calls__gte=1),
                name="agent_max_model_calls_positive",
            ),
        ]

    def __str__(self):
        return self.name

    def snapshot(self) -> dict[str, Any]:
        """What a turn keeps of its profile, as the profile is when the turn is created."""
        return {
            "id": self.pk,
            "name": self.name,
            "instructions": self.instructions,
            "model": self.model,
            "tools": list(self.tools),
            "all_tools": self.all_tools,
            "max_model_calls": self.max_model_calls,
            "context_tokens": self.context_tokens,
            "answer_reserve_tokens": self.answer_reserve_tokens,
        }


class AgentSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_sessions"
    )
    # One line: it heads pages and every approver's e-mail about the session's requests, where a
    # line break would let a title pose as the mail's own lines.
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True, validators=[one_line_text])
    # A profile in use cannot be deleted: its sessions' next turns need it.
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="sessions")
    # The last timeline sequence number handed out; bumped under this row's lock.
    last_seq = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When its latest timeline event was written (its creation until then): the sidebar and the
    # list put the sessions a user is busy with first. Set with ``last_seq``, in the same write
    # (``events.append``), and nowhere else: unlike ``updated_at``, a rename leaves it alone.
    last_activity_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["owner", "-last_activity_at"], name="session_owner_activity")
        ]

    def __str__(self):
        # As chat apps call a conversation before its first message names it.
        return self.title or "New chat"


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
    # The W3C traceparent of the request that started the turn (blank without traces): every run
    # of the turn, in whichever worker and after however long a wait for approval, continues
    # that request's trace (agentproj/tracing.py).
    traceparent = models.CharField(max_length=128, blank=True)
    checkpoint = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    # The profile the turn runs with, as it was when the turn was created (a sub-agent's turn
    # takes its parent's); ``agent`` only says which profile that was.
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="turns"
    )
    agent_snapshot = models.JSONField(default=dict, blank=True)
    # Regenerate makes another version of a top-level turn: a new turn with the same message,
    # linked to the group's first turn (null for that first turn itself). One version of each
    # group is ``shown``: the page draws the others hidden and the model's transcript leaves
    # them out.
    version_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="versions"
    )
    shown = models.BooleanField(default=True)

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
            # A group of versions is named by its first turn: the first's id, or the id the
            # others link to. Two shown versions of one turn would give the model two answers.
            models.UniqueConstraint(
                Coalesce("version_of", "id"),
                condition=Q(shown=True),
                name="one_shown_version_per_turn",
            ),
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
    # An assistant message's text as sanitised HTML, rendered once when the text became final
    # (``events.append``/``events.update``); every read serves it as stored. Kept out of
    # ``data``, which the API returns as it is: the HTML is the API's separate ``html``. Null
    # for every other event and a streaming message; "" is the HTML of an empty answer.
    html = models.TextField(null=True, blank=True, editable=False)  # noqa: DJ001
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


# A server's tools are offered to the model as "<server>__<tool>": the model API allows
# ^[a-zA-Z0-9_-]{1,64}$ for the whole name, and "__" only as the separator keeps names of
# different servers' tools from colliding.
MCP_SERVER_NAME_MAX_LENGTH = 30
mcp_server_name = RegexValidator(
    r"^[a-zA-Z0-9-]+(_[a-zA-Z0-9-]+)*$",
    message="Letters, digits, hyphens and single underscores between them.",
    code="invalid_mcp_server_name",
)


class McpTransport(models.TextChoices):
    STDIO = "stdio", "stdio (a command this machine runs)"
    HTTP = "http", "streamable HTTP"


class McpServer(models.Model):
    """An MCP server whose tools the agent may use, registered in the admin or declared in
    ``AGENT_MCP_SERVERS`` (``declared``: kept in step with the setting, read-only in the admin).

    ``env`` and ``headers`` may hold secrets: the admin writes them but never shows them back.
    For a declared server they stay in the environment and are not stored here.
    """

    name = models.CharField(
        max_length=MCP_SERVER_NAME_MAX_LENGTH,
        unique=True,
        validators=[mcp_server_name],
        help_text="Its tools are offered to the model as this name, two underscores and the "
        'tool\'s name: "time__get_current_time" for the tool get_current_time of "time".',
    )
    transport = models.CharField(max_length=8, choices=McpTransport.choices)
    command = models.CharField(max_length=500, blank=True, help_text="stdio: the program to run.")
    args = models.JSONField(default=list, blank=True, help_text="stdio: a JSON list of strings.")
    env = models.JSONField(default=dict, blank=True)
    url = models.URLField(max_length=2000, blank=True, help_text="streamable HTTP: the endpoint.")
    headers = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    declared = models.BooleanField(default=False, editable=False)
    # What tools/list answered last: [{name, description, input_schema, annotations}].
    tools = models.JSONField(default=list, blank=True, editable=False)
    tools_discovered_at = models.DateTimeField(null=True, blank=True, editable=False)
    discovery_problem = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"
        constraints = [
            models.CheckConstraint(
                condition=Q(transport=McpTransport.STDIO, url="") & ~Q(command="")
                | Q(transport=McpTransport.HTTP, command="") & ~Q(url=""),
                name="mcp_server_transport_complete",
            ),
        ]

    def __str__(self):
        return self.name


class OpenSocket(models.Model):
    """A websocket open now, so that every web process counts a user's sockets
    (``MAX_SOCKETS_PER_USER``; ``socket_registry``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The consumer's channel-layer name: unique to one socket in one web process.
    channel_name = models.CharField(max_length=200, unique=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    # Pushed forward while the web process holding the socket lives; a process that died
    # without closing its sockets leaves rows that stop counting after this.
    alive_until = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "alive_until"], name="open_socket_user_alive")]

    def __str__(self):
        return self.channel_name


currency_code = RegexValidator(
    r"^[A-Z]{3}$", message="A three-letter currency code, e.g. USD.", code="invalid_currency"
)


class ModelPrice(models.Model):
    """What a model's tokens cost, per million. A call is priced when it is recorded
    (``core.usage``), at the price of that moment."""

    model = models.CharField(
        max_length=200,
        unique=True,
        help_text="A model name as the LLM server is sent it (gpt-4o-mini), or a pattern with * "
        "and ? (gpt-4o*). An exact name wins over patterns; of several patterns, the longest.",
    )
    input_price = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        validators=[MinValueValidator(0)],
        help_text="Per million input tokens (cached ones included).",
    )
    output_price = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        validators=[MinValueValidator(0)],
        help_text="Per million output tokens.",
    )
    currency = models.CharField(max_length=3, default="USD", validators=[currency_code])

    class Meta:
        ordering = ["model"]

    def __str__(self):
        return self.model


class UsageRecord(models.Model):
    """One model call's tokens, whose they are and what they cost: the rows budgets and the
    usage page add up. Kept when the session goes (its spending happened): ``turn`` is then
    null, and the agent's name stays."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    turn = models.ForeignKey(
        Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    # Of the input tokens, those the server read from its prompt cache, where it says.
    cached_tokens = models.PositiveBigIntegerField(default=0)
    # The server reported no usage (or the stream was stopped before it could): the counts are
    # estimated from the text's length.
    estimated = models.BooleanField(default=False)
    # Null when no price matched the model.
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        # A budget check sums one user's rows since the start of a period: one range scan.
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_time")]
        permissions = [("view_usage", "Can view everyone's usage")]

    def __str__(self):
        return f"{self.model}: {self.input_tokens} in, {self.output_tokens} out"


class Budget(models.Model):
    """A limit on what one user (``user``), or each member of a group (``group``), may spend in
    a day or a month. A user's own budget replaces every other; without one, each budget of
    their groups applies; without any, ``BUDGET_DEFAULT``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Each member may spend this much, on their own.",
    )
    unit = models.CharField(max_length=8, choices=BudgetUnit.choices, default=BudgetUnit.TOKENS)
    amount = models.DecimalField(
        max_digits=16,
        decimal_places=4,
        validators=[MinValueValidator(0)],
        help_text="Tokens (input and output together), or money in the currency below.",
    )
    currency = models.CharField(
        max_length=3,
        blank=True,
        validators=[currency_code],
        help_text="For a budget in money: what the model prices in this currency add up to.",
    )
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="budget_for_a_user_or_a_group",
            ),
            models.UniqueConstraint(fields=["user"], name="one_budget_per_user"),
            models.UniqueConstraint(fields=["group"], name="one_budget_per_group"),
            models.CheckConstraint(
                condition=Q(unit=BudgetUnit.TOKENS, currency="")
                | Q(unit=BudgetUnit.MONEY) & ~Q(currency=""),
                name="budget_currency_only_for_money",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="budget_amount_not_negative"),
        ]

    def __str__(self):
        amount = f"{self.amount.normalize():f}"
        return f"{self.user or self.group}: {amount} {self.currency or self.unit} per {self.period}"
