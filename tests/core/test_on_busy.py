"""`on_busy` on POST /api/sessions/<id>/turns/: what a message does while a turn is active."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus
from sessions_app.core import lifecycle
from sessions_app.models import Turn
from tests.conftest import wait_for
from tests.turn_states import (
    assert_error,
    interrupts,
    new_session,
    queued_turn,
    running_turn,
    waiting_turn,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def send(api, session_id, message, on_busy):
    return api.post(
        f"/api/sessions/{session_id}/turns/",
        {"message": message, "on_busy": on_busy},
        format="json",
    )


def start_streaming(session, user, run_turn_in_thread):
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    worker = run_turn_in_thread(turn.pk)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())
    return turn, worker


def test_it_interrupts_a_queued_turn_and_queues_the_new_one(api, user):
    old = queued_turn(user)
    response = send(api, old.session_id, "never mind, do this", "interrupt")
    assert response.status_code == 202
    new = Turn.objects.get(pk=response.json()["id"])
    assert response.json()["status"] == "queued"
    old.refresh_from_db()
    assert old.status == TurnStatus.STOPPED
    assert interrupts(old) == 1
    assert new.status == TurnStatus.QUEUED
    assert interrupts(new) == 0


def test_it_interrupts_a_turn_waiting_for_approval(api, user):
    old, approval = waiting_turn(user)
    response = send(api, old.session_id, "forget the email", "interrupt")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    old.refresh_from_db()
    approval.refresh_from_db()
    assert old.status == TurnStatus.STOPPED
    assert approval.status == ApprovalStatus.CANCELLED
    assert interrupts(old) == 1


def test_it_starts_the_new_turn_once_the_interrupted_worker_stops(
    api, user, llm, run_turn_in_thread
):
    session = new_session(user)
    old, worker = start_streaming(session, user, run_turn_in_thread)

    response = send(api, session.pk, "stop, do this instead", "interrupt")

    assert response.status_code == 202
    new = Turn.objects.get(pk=response.json()["id"])
    # Until the worker has wound the old turn down, the new one waits behind it.
    assert response.json()["status"] == "pending"
    assert worker.join() == TurnStatus.STOPPED
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.status == TurnStatus.STOPPED
    assert interrupts(old) == 1
    assert old.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert new.status == TurnStatus.QUEUED
    statuses = [
        (e.turn_id, e.data["status"])
        for e in session.events.filter(kind=EventKind.STATUS).order_by("seq")
    ]
    assert statuses.index((old.pk, "stopped")) < statuses.index((new.pk, "queued"))


def test_it_rejects_by_default(api, user):
    old = queued_turn(user)
    assert_error(send(api, old.session_id, "another", "reject"), 409, "session_busy")
    old.refresh_from_db()
    assert old.status == TurnStatus.QUEUED
    assert old.session.turns.count() == 1


def test_it_enqueues_a_turn_until_the_active_one_completes(api, user, llm, run_turn_in_thread):
    llm.reply("Short answer.")
    old = queued_turn(user)

    response = send(api, old.session_id, "and then this", "enqueue")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    new = Turn.objects.get(pk=response.json()["id"])
    assert run_turn_in_thread(old.pk).join() == TurnStatus.COMPLETED
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.status == TurnStatus.COMPLETED
    assert new.status == TurnStatus.QUEUED
    assert interrupts(old) == 0


def test_it_enqueues_a_turn_until_the_active_one_is_stopped(api, user):
    old = queued_turn(user)
    new_id = send(api, old.session_id, "later", "enqueue").json()["id"]
    assert Turn.objects.get(pk=new_id).status == TurnStatus.PENDING
    api.post(f"/api/sessions/{old.session_id}/cancel/", {}, format="json")
    assert Turn.objects.get(pk=new_id).status == TurnStatus.QUEUED


def test_it_keeps_enqueued_turns_in_order(api, user):
    old = queued_turn(user)
    second = send(api, old.session_id, "second", "enqueue").json()["id"]
    third = send(api, old.session_id, "third", "enqueue").json()["id"]
    # While turns wait, a plain message is still refused.
    assert_error(send(api, old.session_id, "fourth", "reject"), 409, "session_busy")

    api.post(f"/api/sessions/{old.session_id}/cancel/", {}, format="json")
    assert Turn.objects.get(pk=second).status == TurnStatus.QUEUED
    assert Turn.objects.get(pk=third).status == TurnStatus.PENDING

    api.post(f"/api/sessions/{old.session_id}/cancel/", {}, format="json")
    assert Turn.objects.get(pk=second).status == TurnStatus.STOPPED
    assert Turn.objects.get(pk=third).status == TurnStatus.QUEUED


def test_it_enqueues_nothing_in_an_idle_session(api, user):
    session = new_session(user)
    response = send(api, session.pk, "hello", "enqueue")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_it_starts_an_interrupting_turn_ahead_of_enqueued_ones(api, user):
    active, lease = running_turn(user)
    enqueued = send(api, active.session_id, "after that", "enqueue").json()["id"]

    response = send(api, active.session_id, "stop, do this first", "interrupt")

    assert response.status_code == 202
    interrupting = response.json()["id"]
    assert response.json()["status"] == "pending"
    # The worker winds the interrupted turn down.
    lifecycle.turn_finalize(turn_id=active.pk, status=TurnStatus.STOPPED, lease_token=lease)
    assert Turn.objects.get(pk=interrupting).status == TurnStatus.QUEUED
    assert Turn.objects.get(pk=enqueued).status == TurnStatus.PENDING
    active.refresh_from_db()
    assert interrupts(active) == 1

    api.post(f"/api/sessions/{active.session_id}/cancel/", {}, format="json")
    assert Turn.objects.get(pk=interrupting).status == TurnStatus.STOPPED
    assert Turn.objects.get(pk=enqueued).status == TurnStatus.QUEUED


def test_it_queues_an_interrupting_turn_at_once_ahead_of_enqueued_ones(api, user):
    active = queued_turn(user)
    enqueued = send(api, active.session_id, "after that", "enqueue").json()["id"]

    response = send(api, active.session_id, "stop, do this first", "interrupt")

    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    active.refresh_from_db()
    assert active.status == TurnStatus.STOPPED
    assert interrupts(active) == 1
    assert Turn.objects.get(pk=enqueued).status == TurnStatus.PENDING
    statuses = [
        (e.turn_id, e.data["status"])
        for e in active.session.events.filter(kind=EventKind.STATUS).order_by("seq")
    ]
    assert (enqueued, "queued") not in statuses


def test_it_starts_the_latest_interrupting_turn_first(api, user):
    active, lease = running_turn(user)
    first = send(api, active.session_id, "do this instead", "interrupt").json()["id"]
    latest = send(api, active.session_id, "no, this", "interrupt").json()["id"]

    lifecycle.turn_finalize(turn_id=active.pk, status=TurnStatus.STOPPED, lease_token=lease)

    assert Turn.objects.get(pk=latest).status == TurnStatus.QUEUED
    assert Turn.objects.get(pk=first).status == TurnStatus.PENDING
