"""PATCH and DELETE /api/sessions/<id>/: renaming a session, and deleting it with everything in
it. A session with an active turn has the turn stopped first, as Stop stops it: one interrupt
notice that open pages see before they are told the session is gone, its approval requests
cancelled and their approvers told, and its worker left with nothing to write to."""

import pydoc

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, SessionGrant
from sessions_app.core import errors, leases, lifecycle, sessions
from sessions_app.models import AgentSession, TimelineEvent, Turn
from tests.conftest import wait_for
from tests.sockets import resumed_session_socket, session_cookie
from tests.turn_states import (
    assert_error,
    new_session,
    pending_turn,
    running_turn,
    waiting_turn,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Bounds how long a broken test waits (a worker process takes a few seconds to start).
WORKER_TIMEOUT = 90


# Renaming


def test_it_renames_a_session(api, user):
    session = new_session(user)

    response = api.patch(
        f"/api/sessions/{session.pk}/", {"title": "  Holiday plans "}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["title"] == "Holiday plans"
    assert response.json()["status"] == "idle"
    session.refresh_from_db()
    assert session.title == "Holiday plans"


def test_it_clears_a_title_as_a_session_may_be_created_without_one(api, user):
    session = new_session(user)

    response = api.patch(f"/api/sessions/{session.pk}/", {"title": ""}, format="json")

    assert response.status_code == 200
    session.refresh_from_db()
    assert session.title == ""


@pytest.mark.parametrize(
    "body", [{"title": "x" * 201}, {"title": "bell \x07"}, {"title": 7}, {}], ids=repr
)
def test_it_refuses_a_title_the_create_path_refuses(api, user, body):
    session = new_session(user)

    response = api.patch(f"/api/sessions/{session.pk}/", body, format="json")

    assert_error(response, 400, "invalid")
    assert "title" in response.json()["fields"]
    session.refresh_from_db()
    assert session.title == "foundation"


def test_it_does_not_rename_another_users_session(api, other_user):
    theirs = new_session(other_user)

    response = api.patch(f"/api/sessions/{theirs.pk}/", {"title": "mine now"}, format="json")

    assert_error(response, 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.title == "foundation"


# Deleting


def test_it_deletes_a_session_with_its_timeline(api, user):
    session = new_session(user)
    lifecycle.turn_start(session=session, message="hello", actor=user)
    lifecycle.turn_request_cancel(session=session, actor=user)

    response = api.delete(f"/api/sessions/{session.pk}/")

    assert response.status_code == 204
    assert not AgentSession.objects.filter(pk=session.pk).exists()
    assert not Turn.objects.exists() and not TimelineEvent.objects.exists()
    assert_error(api.get(f"/api/sessions/{session.pk}/"), 404, "not_found")


def test_it_does_not_delete_another_users_session(api, other_user):
    theirs = new_session(other_user)

    assert_error(api.delete(f"/api/sessions/{theirs.pk}/"), 404, "not_found")
    assert AgentSession.objects.filter(pk=theirs.pk).exists()


def watch_while(session, user, action):
    """What the session's open page receives from its resume until it is told the session is
    gone, while ``action`` runs."""
    cookie = session_cookie(user)

    async def scenario():
        async with resumed_session_socket(session.pk, cookie, session.last_seq) as socket:
            assert (await socket.receive_json_from(timeout=5))["type"] == "replayed"
            answer = await database_sync_to_async(action)()
            seen = []
            while not seen or seen[-1]["type"] != "session_deleted":
                seen.append(await socket.receive_json_from(timeout=10))
            closed = await socket.receive_output(timeout=5)
            return answer, seen, closed

    return async_to_sync(scenario)()


def timeline(seen) -> list[tuple[str, str | None]]:
    return [
        (m["event"]["kind"], m["event"]["data"].get("status")) for m in seen if m["type"] == "event"
    ]


def test_it_stops_a_running_turn_with_one_notice_before_the_session_goes(api, user):
    turn, _ = running_turn(user)
    session = AgentSession.objects.get(pk=turn.session_id)

    answer, seen, closed = watch_while(
        session, user, lambda: api.delete(f"/api/sessions/{session.pk}/")
    )

    assert answer.status_code == 204
    assert timeline(seen) == [
        (EventKind.STATUS, TurnStatus.STOPPING),
        (EventKind.INTERRUPT, None),
        (EventKind.STATUS, TurnStatus.STOPPED),
    ]
    (interrupt,) = [
        m["event"] for m in seen if m["type"] == "event" and m["event"]["kind"] == "interrupt"
    ]
    assert interrupt["turn"] == turn.pk
    assert interrupt["data"]["text"] == "Stopped by the user."
    assert seen[-1] == {"type": "session_deleted"}
    assert closed["type"] == "websocket.close"
    assert not Turn.objects.filter(pk=turn.pk).exists()


def test_it_leaves_the_worker_of_a_deleted_turn_nothing_to_write(api, user):
    turn, lease = running_turn(user)
    session = AgentSession.objects.get(pk=turn.session_id)
    assert api.delete(f"/api/sessions/{session.pk}/").status_code == 204

    # What the turn's worker does next, once it has seen the stop: each write is refused as
    # for a turn taken over elsewhere, and the worker lets the turn go.
    with pytest.raises(errors.LeaseLost):
        leases.turn_record_event(
            turn_id=turn.pk, lease_token=lease, kind=EventKind.TOOL_PROGRESS, data={}
        )
    with pytest.raises(errors.LeaseLost):
        lifecycle.turn_finalize(
            turn_id=turn.pk, lease_token=lease, status=TurnStatus.STOPPED, partial_text="Once"
        )
    # A delivery of its task that arrives late finds nothing to run.
    assert leases.turn_take_lease(turn_id=turn.pk, worker_id="late-worker") is None
    assert not TimelineEvent.objects.exists()


def test_it_stops_the_turns_waiting_in_line_too(api, user):
    active, waiting = pending_turn(user)
    session = AgentSession.objects.get(pk=active.session_id)

    answer, seen, _ = watch_while(session, user, lambda: api.delete(f"/api/sessions/{session.pk}/"))

    assert answer.status_code == 204
    stops = [
        (m["event"]["turn"], m["event"]["kind"])
        for m in seen
        if m["type"] == "event" and m["event"]["kind"] == EventKind.INTERRUPT
    ]
    # One notice per stopped turn; the waiting one never started.
    assert stops == [(active.pk, EventKind.INTERRUPT), (waiting.pk, EventKind.INTERRUPT)]
    assert (EventKind.STATUS, TurnStatus.QUEUED) not in timeline(seen)[1:]


def run_notices() -> list:
    """Run the approval notices the broker holds, as a worker would."""
    broker = get_broker()
    ran = []
    while batch := broker.dequeue():
        for ack_id, package in batch:
            task = SignedPackage.loads(package)
            if task["func"].startswith("approvals_app.tasks."):
                ran.append(pydoc.locate(task["func"])(*task["args"], **task["kwargs"]))
            broker.acknowledge(ack_id)
    return ran


def test_it_cancels_the_approval_requests_and_tells_their_approvers(api, user, approver, outbox):
    approver.email = "carol@example.com"
    approver.save(update_fields=["email"])
    turn, approval = waiting_turn(user)
    session = AgentSession.objects.get(pk=turn.session_id)
    run_notices()
    outbox.clear()

    answer, seen, _ = watch_while(session, user, lambda: api.delete(f"/api/sessions/{session.pk}/"))

    assert answer.status_code == 204
    assert timeline(seen) == [(EventKind.INTERRUPT, None), (EventKind.STATUS, TurnStatus.STOPPED)]
    assert not ApprovalRequest.objects.exists() and not SessionGrant.objects.exists()
    run_notices()
    (notice,) = outbox
    assert notice.to == ["carol@example.com"]
    assert notice.subject == f"Cancelled: send_email (request {approval.pk})"
    assert "no longer needed" in notice.body


def test_it_deletes_a_streaming_turns_session_and_the_worker_goes_on(
    llm, api, user, worker_process, tmp_path
):
    # Slow enough that the story is still streaming when the session is deleted.
    llm.token_delay = 0.05
    worker = worker_process()
    doomed = sessions.session_create(owner=user, title="Doomed")
    turn = lifecycle.turn_start(session=doomed, message="tell me a long story", actor=user)
    wait_for(
        lambda: TimelineEvent.objects.filter(
            turn_id=turn.pk, kind=EventKind.ASSISTANT_MESSAGE
        ).exists(),
        timeout=WORKER_TIMEOUT,
    )

    assert api.delete(f"/api/sessions/{doomed.pk}/").status_code == 204

    other = sessions.session_create(owner=user, title="Next")
    next_turn = lifecycle.turn_start(session=other, message="hello", actor=user)
    wait_for(lambda: Turn.objects.get(pk=next_turn.pk).is_terminal, timeout=WORKER_TIMEOUT)
    assert Turn.objects.get(pk=next_turn.pk).status == TurnStatus.COMPLETED
    assert worker.poll() is None
    assert not Turn.objects.filter(session_id=doomed.pk).exists()
    log = (tmp_path / "worker-0.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log, log
    # It was still streaming: its worker saw the stop, found the turn gone and let it go.
    assert f"turn {turn.pk}: lease lost" in log, log
