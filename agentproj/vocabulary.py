"""The words the whole project shares: statuses and their groups, what people read for them,
limits, websocket close codes and message types. Python imports them from here; templates get
them through the views, and the pages' scripts from the JSON the pages embed (``json_script``),
so no status, label or limit is spelled twice.
"""

from enum import IntEnum

from django.db import models

# Statuses


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
    # The user's usage budget ran out while the turn ran (DESIGN §6b).
    BUDGET_EXHAUSTED = "budget_exhausted"


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
    # A request still pending when its rule's escalate_after passed: another group may decide.
    APPROVAL_ESCALATED = "approval_escalated"
    STATUS = "status"
    INTERRUPT = "interrupt"
    ERROR = "error"
    TOOL_PROGRESS = "tool_progress"
    # The model stopped seeing the oldest exchanges of the session: they no longer fit its
    # context window. Written once per turn that leaves something out.
    CONTEXT_TRIMMED = "context_trimmed"
    # Which version of a turn the page and the model's transcript use: written when Regenerate
    # makes a new version and when the user switches between them.
    VERSION_SHOWN = "version_shown"


# The statuses Stop applies to (DESIGN §5); a stopping turn is already on its way.
STOPPABLE_STATUSES = (
    TurnStatus.QUEUED,
    TurnStatus.RUNNING,
    TurnStatus.WAITING_FOR_APPROVAL,
)

SESSION_STATUS_OF_TURN = {
    TurnStatus.QUEUED: "running",
    TurnStatus.RUNNING: "running",
    TurnStatus.WAITING_FOR_APPROVAL: "waiting_for_approval",
    TurnStatus.STOPPING: "stopping",
}


# What people read

TURN_STATUS_LABELS = {
    TurnStatus.PENDING: "Waiting in line",
    TurnStatus.QUEUED: "Queued",
    TurnStatus.RUNNING: "Running",
    TurnStatus.WAITING_FOR_APPROVAL: "Waiting for approval",
    TurnStatus.STOPPING: "Stopping…",
    TurnStatus.COMPLETED: "Completed",
    TurnStatus.STOPPED: "Stopped",
    TurnStatus.FAILED: "Failed",
}

SESSION_STATUS_LABELS = {
    "idle": "Idle",
    "running": "Running",
    "waiting_for_approval": "Waiting for approval",
    "stopping": "Stopping…",
}

USER_FACING_ERRORS = {
    ErrorCode.LLM_ERROR: "The language model could not be reached or kept failing.",
    ErrorCode.TOOL_ERROR: "A tool failed in a way the agent could not recover from.",
    ErrorCode.WORKER_LOST: "The worker running this turn stopped responding.",
    ErrorCode.MODEL_CALL_LIMIT: "The agent reached its limit of model calls for one turn.",
    ErrorCode.PERSISTENCE_ERROR: "The turn's progress could not be saved.",
    ErrorCode.INTERNAL_ERROR: "Something went wrong while running this turn.",
}


INTERRUPT_TEXT = {
    StopReason.USER_CANCEL: "Stopped by the user.",
    StopReason.WORKER_DRAIN: "Stopped because its worker shut down.",
    StopReason.PARENT_STOPPED: "Stopped because the turn that started it was stopped.",
    StopReason.APPROVAL_EXPIRED: "Stopped because an approval was not given in time.",
    StopReason.BUDGET_EXHAUSTED: "Stopped because your usage budget ran out.",
}


class BudgetUnit(models.TextChoices):
    TOKENS = "tokens", "tokens"
    MONEY = "money", "money"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "a day"
    MONTH = "month", "a month"


# What the chat page's script says in its own words: refusals it cannot take from an answer's
# ``detail`` (no answer at all), and the states of its connection.
PAGE_TEXTS = {
    "unreachable": "Could not reach the server. Check your connection and try again.",
    "failed": "The request failed. Try again.",
    "empty": "Type a message first.",
    "invalid_json": "The arguments are not valid JSON.",
    "not_an_object": "The arguments must be a JSON object: names and values in braces.",
    "login_ended": "You are logged out. Reload the page to log in again.",
    # Refusals the page words for its own buttons; any other answer's ``detail`` is shown.
    "refusals": {
        "session_busy": "A turn is still active. Use “Stop and send” or “Queue”.",
        "not_last_turn": "Only the last answer can be regenerated.",
        "not_pending": "This request was already decided, cancelled or expired.",
        "not_authenticated": "Your login has expired. Reload the page to log in again.",
        "authentication_failed": "Your login has expired. Reload the page to log in again.",
        "throttled": "Too many requests. Wait a moment and try again.",
        "invalid": "The message is empty, too long or has characters that are not allowed.",
    },
    "stop": "Stop",
    "stopping": "Stopping…",
    "edit_arguments": "Edit arguments",
    "discard_edit": "Discard edit",
    "copy": "Copy",
    "copy_code": "Copy code",
    "copy_answer": "Copy this answer",
    "edit": "Edit",
    "edit_message": "Edit this message",
    "save_edit": "Save and send",
    "cancel_edit": "Cancel",
    "edited_message": "Your message, edited",
    "copied": "Copied",
    "copy_failed": "Copy failed",
    "rename_failed": "The session could not be renamed.",
    "delete_failed": "The session could not be deleted.",
    "session_deleted": "This session was deleted.",
    "back_to_list": "Back to your sessions",
    "connection": {
        "connecting": "Connecting…",
        "reconnecting": "Reconnecting…",
        "live": "Live",
        "ended": "Logged out",
        "gone": "Deleted",
    },
}


# Limits

TITLE_MAX_LENGTH = 200


CANCEL_REASON_MAX_LENGTH = 500


DECISION_REASON_MAX_LENGTH = 2000


# The limits the pages' forms hold to, by name (templates read ``limits.title``).
PAGE_LIMITS = {"title": TITLE_MAX_LENGTH, "decision_reason": DECISION_REASON_MAX_LENGTH}


# Channel-layer message types (a consumer's handler is named after each: timeline.event ->
# timeline_event)

EVENT_MESSAGE_TYPE = "timeline.event"
DELTA_MESSAGE_TYPE = "timeline.delta"
CONTROL_MESSAGE_TYPE = "turn.control"
# A turn was queued: hosts with room may take it at once, ahead of the broker's delivery.
TURN_QUEUED_MESSAGE_TYPE = "turn.queued"
APPROVAL_QUEUE_MESSAGE_TYPE = "approvals.changed"
LOGIN_ENDED_MESSAGE_TYPE = "login.ended"


# To an owner's open session lists: one of their sessions changed (status, title) or is gone.
SESSIONS_CHANGED_MESSAGE_TYPE = "sessions.changed"


# To a session's group: its title changed, or it was deleted.
SESSION_TITLE_MESSAGE_TYPE = "session.title"
SESSION_DELETED_MESSAGE_TYPE = "session.deleted"


# To a waiting request's own channel, from itself: its time is up (``broadcast.turn_end``).
WAIT_OVER_MESSAGE_TYPE = "wait.over"


class CloseCode(IntEnum):
    """Why a websocket was closed; the pages' scripts act on each."""

    # The login is missing or ended (logged out, expired).
    LOGIN_ENDED = 4401
    # Not allowed (an approver's socket for someone who may not decide).
    NOT_ALLOWED = 4403
    # Not this user's session, or it was deleted.
    NOT_FOUND = 4404
    # Too many sockets or resumes: try again later.
    TOO_MANY = 4429


# What the pages' scripts are given, as one JSON object (``agentproj.context_processors``,
# embedded by ``json_script``; read by ``static/agentproj/vocabulary.js``).
PAGE_VOCABULARY = {
    "close_codes": {code.name: code.value for code in CloseCode},
    "event_kinds": {kind.name: kind.value for kind in EventKind},
    "texts": PAGE_TEXTS,
}
