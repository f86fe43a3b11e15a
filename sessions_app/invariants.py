"""The contract's invariants (DESIGN.md section 3), checked over the whole database.

The database enforces what it can with constraints; this finds what a bug, a crash or a hand
edit could still leave behind. ``manage.py check_invariants`` runs it for operators; the chaos
soak (``bench/soak.py``) runs it after every run. Each check is one query whatever the size of
the database, so it is safe on a live system; only ``idle=True`` assumes no turn is running.
"""

from dataclasses import dataclass

from django.db.models import Count, F, Q, Window
from django.db.models.functions import Lag

from agentproj.vocabulary import ACTIVE_STATUSES, TERMINAL_STATUSES, EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.models import AgentSession, TimelineEvent, Turn


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.subject}: {self.detail}"


INVARIANTS = {
    "one_active_turn_per_session": "at most one active turn per session",
    "one_interrupt_per_stopped_turn": "one interrupt event per stopped turn, none for others",
    "one_error_per_failed_turn": "one error event per failed turn, none for others",
    "seq_strictly_increasing": "event seq strictly increasing per session",
    "no_pending_approval_on_terminal_turn": "no pending approval on a terminal turn",
    "approved_call_runs_once": "an approved call runs at most once, an unapproved one never",
    "no_lease_on_terminal_turn": "no lease on a terminal turn",
    "partial_text_kept": "a finished turn's messages are no longer streaming",
    "final_message_rendered": "a final assistant message keeps its rendered HTML",
    "no_active_turn_when_idle": "no turn left active once workers are idle",
}


def find_violations(*, idle: bool = False) -> list[Violation]:
    """Every violation in the database; ``idle`` adds the check that nothing is still active,
    which holds only once the workers have finished (after a drain, or in a test)."""
    checks = [
        _one_active_turn_per_session,
        _one_interrupt_per_stopped_turn,
        _one_error_per_failed_turn,
        _seq_strictly_increasing,
        _no_pending_approval_on_terminal_turn,
        _approved_call_runs_once,
        _no_lease_on_terminal_turn,
        _partial_text_kept,
        _final_message_rendered,
    ]
    if idle:
        checks.append(_no_active_turn_when_idle)
    return [violation for check in checks for violation in check()]


def _turn(turn_id) -> str:
    return f"turn {turn_id}"


def _one_active_turn_per_session() -> list[Violation]:
    crowded = (
        Turn.objects.filter(parent__isnull=True, status__in=ACTIVE_STATUSES)
        .values("session_id")
        .annotate(active=Count("pk"))
        .filter(active__gt=1)
    )
    return [
        Violation(
            "one_active_turn_per_session",
            f"session {row['session_id']}",
            f"{row['active']} active turns",
        )
        for row in crowded
    ]


def _events_per_turn(kind: str, status: str, invariant: str) -> list[Violation]:
    """Turns in ``status`` need exactly one event of ``kind``; other turns need none."""
    counted = Turn.objects.annotate(found=Count("events", filter=Q(events__kind=kind)))
    wrong = counted.filter(
        (Q(status=status) & ~Q(found=1)) | (~Q(status=status) & Q(found__gt=0))
    ).values_list("pk", "status", "found")
    return [
        Violation(invariant, _turn(pk), f"{turn_status} with {found} {kind} events")
        for pk, turn_status, found in wrong
    ]


def _one_interrupt_per_stopped_turn() -> list[Violation]:
    return _events_per_turn(
        EventKind.INTERRUPT, TurnStatus.STOPPED, "one_interrupt_per_stopped_turn"
    )


def _one_error_per_failed_turn() -> list[Violation]:
    return _events_per_turn(EventKind.ERROR, TurnStatus.FAILED, "one_error_per_failed_turn")


def _seq_strictly_increasing() -> list[Violation]:
    """Events are written in seq order under their session's lock, so in each session a later
    row must carry a larger seq, and none may pass the session's counter."""
    with_previous = TimelineEvent.objects.annotate(
        previous_seq=Window(Lag("seq"), partition_by=F("session_id"), order_by=F("pk").asc())
    )
    out_of_order = with_previous.filter(previous_seq__gte=F("seq")).values_list(
        "session_id", "pk", "seq", "previous_seq"
    )
    violations = [
        Violation(
            "seq_strictly_increasing",
            f"session {session_id}",
            f"event {pk} has seq {seq} after seq {previous}",
        )
        for session_id, pk, seq, previous in out_of_order
    ]
    beyond = TimelineEvent.objects.filter(seq__gt=F("session__last_seq")).values_list(
        "session_id", "pk", "seq"
    )
    violations += [
        Violation(
            "seq_strictly_increasing",
            f"session {session_id}",
            f"event {pk} has seq {seq}, beyond the session's last seq",
        )
        for session_id, pk, seq in beyond
    ]
    return violations


def _no_pending_approval_on_terminal_turn() -> list[Violation]:
    left = ApprovalRequest.objects.filter(
        status=ApprovalStatus.PENDING, turn__status__in=TERMINAL_STATUSES
    ).values_list("pk", "turn_id", "turn__status")
    return [
        Violation(
            "no_pending_approval_on_terminal_turn",
            f"approval {pk}",
            f"pending on {_turn(turn_id)}, which is {status}",
        )
        for pk, turn_id, status in left
    ]


def _approved_call_runs_once() -> list[Violation]:
    """A call that waited for a human has at most one successful result, and one only if it
    was approved: a second would mean the tool ran twice, one without approval that it ran
    although nobody (or a timeout) said yes."""
    successful = {}
    results = TimelineEvent.objects.filter(
        kind=EventKind.TOOL_RESULT, turn_id__in=ApprovalRequest.objects.values("turn_id")
    ).values_list("turn_id", "data")
    for turn_id, data in results:
        if data.get("ok"):
            key = (turn_id, data.get("tool_call_id"))
            successful[key] = successful.get(key, 0) + 1
    violations = []
    gated = ApprovalRequest.objects.values_list("pk", "turn_id", "tool_call_id", "status")
    for pk, turn_id, call_id, status in gated:
        ran = successful.get((turn_id, call_id), 0)
        if ran > 1:
            violations.append(
                Violation("approved_call_runs_once", f"approval {pk}", f"the call ran {ran} times")
            )
        elif ran and status != ApprovalStatus.APPROVED:
            violations.append(
                Violation("approved_call_runs_once", f"approval {pk}", f"the call ran {status}")
            )
    return violations


def _no_lease_on_terminal_turn() -> list[Violation]:
    leased = (
        Turn.objects.filter(status__in=TERMINAL_STATUSES)
        .filter(Q(lease_token__isnull=False) | ~Q(worker_id=""))
        .values_list("pk", "status", "worker_id")
    )
    return [
        Violation(
            "no_lease_on_terminal_turn",
            _turn(pk),
            f"{status} but leased to {worker_id or 'an unnamed worker'}",
        )
        for pk, status, worker_id in leased
    ]


def _partial_text_kept() -> list[Violation]:
    """A finished turn's assistant messages are final: the text a stop keeps is the text that
    was streaming, and a flag left on means the page still waits for more. (Whether that text
    is all that had been stored when the stop was asked for, the soak checks from outside; an
    empty message is not wrong in itself: a retried model call starts its answer again.)"""
    streaming = TimelineEvent.objects.filter(
        kind=EventKind.ASSISTANT_MESSAGE, turn__status__in=TERMINAL_STATUSES, data__streaming=True
    ).values_list("pk", "turn_id", "turn__status")
    return [
        Violation("partial_text_kept", _turn(turn_id), f"{status}; message {pk} still streaming")
        for pk, turn_id, status in streaming
    ]


def _final_message_rendered() -> list[Violation]:
    """Reads serve the HTML stored when a message's text became final: a final message without
    it reaches the API without its ``html`` and is rendered again at every page load."""
    unrendered = (
        TimelineEvent.objects.filter(kind=EventKind.ASSISTANT_MESSAGE, html__isnull=True)
        .exclude(data__streaming=True)
        .values_list("pk", "turn_id")
    )
    return [
        Violation("final_message_rendered", _turn(turn_id), f"message {pk} has no stored HTML")
        for pk, turn_id in unrendered
    ]


def _no_active_turn_when_idle() -> list[Violation]:
    left = Turn.objects.filter(status__in=(*ACTIVE_STATUSES, TurnStatus.PENDING)).values_list(
        "pk", "status"
    )
    return [
        Violation("no_active_turn_when_idle", _turn(pk), f"still {status}") for pk, status in left
    ]


def summary() -> dict[str, int]:
    """How many turns end in each status, with the sessions and events they belong to."""
    counts = {"sessions": AgentSession.objects.count()}
    counts["events"] = TimelineEvent.objects.count()
    for row in Turn.objects.values("status").annotate(n=Count("pk")).order_by("status"):
        counts[f"turns {row['status']}"] = row["n"]
    return counts
