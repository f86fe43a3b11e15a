"""``manage.py check_invariants``: silent on a database the application wrote, and names each
invariant a corrupted database breaks, exiting with 1.

The database is built through the real services and a real (scripted) model server: a completed
turn, a stopped turn with partial text, a failed turn, and an approved email that was sent. Each
corruption is one a bug or a crash could leave behind; the one-active-turn rule cannot be broken
here, since a constraint refuses it before the checker could see it.
"""

import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import F

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import events, lifecycle, locks
from sessions_app.models import TimelineEvent, Turn
from tests.turn_states import queued_turn, stopping_turn, turn_in

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def written_by_the_app(user, approver, email_waiting_for_approval, run_turn_in_thread):
    """Turns in every terminal status, as the application leaves them: {name: turn}."""
    turns = {"failed": turn_in(TurnStatus.FAILED, user)}
    stopping, lease = stopping_turn(user)
    lifecycle.turn_finalize(
        turn_id=stopping.pk, status=TurnStatus.STOPPED, lease_token=lease, partial_text="Once upon"
    )
    turns["stopped"] = stopping
    emailed, approval = email_waiting_for_approval()
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    assert run_turn_in_thread(emailed.pk).join() == TurnStatus.COMPLETED
    turns["emailed"] = emailed
    for turn in turns.values():
        turn.refresh_from_db()
    return turns


def check(*options: str) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("check_invariants", "--json", *options, stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue())


def broken(report: dict) -> set[str]:
    return {violation["invariant"] for violation in report["violations"]}


def add_event(turn: Turn, kind: str, data: dict) -> None:
    """An event written past the services, with the session's next seq."""
    with transaction.atomic():
        session, locked = locks.lock_turn(turn.pk)
        events.append(session=session, turn=locked, kind=kind, data=data)


def test_it_finds_nothing_wrong_in_what_the_application_wrote(written_by_the_app, outbox):
    code, report = check("--idle")
    assert (code, report["violations"]) == (0, [])
    assert report["counts"]["turns completed"] == 1
    assert report["counts"]["turns stopped"] == 1
    assert report["counts"]["turns failed"] == 1
    assert len(outbox) == 1


def test_it_reports_a_lease_left_on_a_finished_turn(written_by_the_app):
    Turn.objects.filter(pk=written_by_the_app["stopped"].pk).update(
        lease_token=uuid.uuid4(), worker_id="host-1"
    )
    code, report = check()
    assert code == 1
    assert broken(report) == {"no_lease_on_terminal_turn"}


def test_it_reports_a_stopped_turn_without_its_interrupt_notice(written_by_the_app):
    written_by_the_app["stopped"].events.filter(kind=EventKind.INTERRUPT).delete()
    code, report = check()
    assert code == 1
    assert broken(report) == {"one_interrupt_per_stopped_turn"}


def test_it_reports_an_interrupt_notice_on_a_turn_that_was_not_stopped(written_by_the_app):
    add_event(written_by_the_app["emailed"], EventKind.INTERRUPT, {"reason": "user_cancel"})
    code, report = check()
    assert code == 1
    assert broken(report) == {"one_interrupt_per_stopped_turn"}


def test_it_reports_an_error_notice_on_a_completed_turn(written_by_the_app):
    add_event(written_by_the_app["emailed"], EventKind.ERROR, {"code": "llm_error"})
    code, report = check()
    assert code == 1
    assert broken(report) == {"one_error_per_failed_turn"}


def test_it_reports_events_whose_seq_goes_backwards(written_by_the_app):
    session_events = written_by_the_app["emailed"].session.events.order_by("seq")
    first, second = list(session_events)[:2]
    # Through a free seq, so the unique (session, seq) constraint holds at every step.
    spare = first.session.last_seq + 1
    TimelineEvent.objects.filter(pk=first.pk).update(seq=spare)
    TimelineEvent.objects.filter(pk=second.pk).update(seq=first.seq)
    TimelineEvent.objects.filter(pk=first.pk).update(seq=second.seq)
    code, report = check()
    assert code == 1
    assert broken(report) == {"seq_strictly_increasing"}


def test_it_reports_an_event_beyond_the_sessions_counter(written_by_the_app):
    last = written_by_the_app["failed"].session.events.order_by("seq").last()
    TimelineEvent.objects.filter(pk=last.pk).update(seq=F("seq") + 10)
    code, report = check()
    assert code == 1
    assert broken(report) == {"seq_strictly_increasing"}


def test_it_reports_an_approval_left_pending_on_a_finished_turn(written_by_the_app):
    ApprovalRequest.objects.filter(turn=written_by_the_app["emailed"]).update(
        status=ApprovalStatus.PENDING
    )
    code, report = check()
    assert code == 1
    assert "no_pending_approval_on_terminal_turn" in broken(report)


def test_it_reports_an_approved_call_that_ran_twice(written_by_the_app):
    emailed = written_by_the_app["emailed"]
    result = emailed.events.get(kind=EventKind.TOOL_RESULT)
    add_event(emailed, EventKind.TOOL_RESULT, result.data)
    code, report = check()
    assert code == 1
    assert broken(report) == {"approved_call_runs_once"}


def test_two_approved_calls_of_one_turn_that_each_ran_once_are_fine(written_by_the_app):
    emailed = written_by_the_app["emailed"]
    first = emailed.approval_requests.get()
    ApprovalRequest.objects.create(
        turn=emailed,
        tool_call_id="call_second",
        tool_name=first.tool_name,
        arguments=first.arguments,
        arguments_hash=first.arguments_hash,
        status=ApprovalStatus.APPROVED,
        expires_at=first.expires_at,
    )
    add_event(
        emailed,
        EventKind.TOOL_RESULT,
        {"tool_call_id": "call_second", "tool": first.tool_name, "ok": True, "result": "sent"},
    )
    code, report = check("--idle")
    assert (code, report["violations"]) == (0, [])


def test_it_reports_a_call_that_ran_although_it_was_rejected(written_by_the_app):
    ApprovalRequest.objects.filter(turn=written_by_the_app["emailed"]).update(
        status=ApprovalStatus.REJECTED
    )
    code, report = check()
    assert code == 1
    assert broken(report) == {"approved_call_runs_once"}


def test_it_reports_a_finished_turn_whose_text_is_still_streaming(written_by_the_app):
    message = written_by_the_app["stopped"].events.get(kind=EventKind.ASSISTANT_MESSAGE)
    assert message.data == {"text": "Once upon", "streaming": False}
    TimelineEvent.objects.filter(pk=message.pk).update(data={"text": "Once", "streaming": True})
    code, report = check()
    assert (code, broken(report)) == (1, {"partial_text_kept"})


def test_it_reports_a_final_message_without_its_rendered_html(written_by_the_app):
    message = written_by_the_app["stopped"].events.get(kind=EventKind.ASSISTANT_MESSAGE)
    assert message.html == "<p>Once upon</p>"
    TimelineEvent.objects.filter(pk=message.pk).update(html=None)
    code, report = check()
    assert (code, broken(report)) == (1, {"final_message_rendered"})


def test_it_reports_turns_left_active_only_when_told_the_workers_are_idle(user):
    queued_turn(user)
    code, report = check()
    assert (code, report["violations"]) == (0, [])
    code, report = check("--idle")
    assert code == 1
    assert broken(report) == {"no_active_turn_when_idle"}


def test_it_prints_a_line_per_invariant_for_people(written_by_the_app):
    Turn.objects.filter(pk=written_by_the_app["failed"].pk).update(worker_id="host-1")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("check_invariants", stdout=out)
    lines = out.getvalue().splitlines()
    assert "FAIL no lease on a terminal turn: 1 violations" in lines
    assert "ok   at most one active turn per session: 0 violations" in lines
    assert any(line.startswith("no_lease_on_terminal_turn: turn ") for line in lines)
