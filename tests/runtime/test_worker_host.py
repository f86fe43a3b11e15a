"""A real ``qcluster`` worker process hosts many turns at once in its event loop.

Each test starts real processes against a real loopback model server; turns are started through
the services, as the API does, and reach the worker through django-q2's broker.
"""

import os
import signal

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.core import housekeeping, lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import PROCESS_EXIT_TIMEOUT, wait_for
from tests.processes import alive, descendants, in_group

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def start_stories(user, count: int) -> list[Turn]:
    turns = []
    for _ in range(count):
        session = sessions.session_create(owner=user)
        turns.append(lifecycle.turn_start(session=session, message="tell me a story", actor=user))
    return turns


def streamed_text(turn: Turn) -> str:
    event = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").first()
    return event.data["text"] if event else ""


def status_of(turn: Turn) -> str:
    return Turn.objects.values_list("status", flat=True).get(pk=turn.pk)


def assert_stopped_once(turn: Turn, reason: str) -> None:
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == reason
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    assert streamed_text(turn)


def test_it_streams_twenty_turns_at_once_in_one_worker_process(llm, user, worker_process, settings):
    # One user sends them all here: the per-user cap is not what this test is about.
    settings.MAX_ACTIVE_TURNS_PER_USER = 20
    llm.token_delay = 0.05
    worker_process(Q_WORKERS="1")
    turns = start_stories(user, 20)

    wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)

    # Every turn had text before any of them finished: they stream at once, not one by one.
    assert not any(Turn.objects.get(pk=turn.pk).is_terminal for turn in turns)
    assert len({Turn.objects.get(pk=turn.pk).worker_id for turn in turns}) == 1
    stopped, going_on = turns[:5], turns[5:]
    for turn in stopped:
        lifecycle.turn_request_cancel(session=turn.session, actor=user)
    for turn in stopped:
        wait_for(lambda turn=turn: status_of(turn) == TurnStatus.STOPPED, timeout=30)
        assert_stopped_once(turn, StopReason.USER_CANCEL)
    assert all(status_of(turn) == TurnStatus.RUNNING for turn in going_on)

    llm.token_delay = 0.001
    for turn in going_on:
        wait_for(lambda turn=turn: status_of(turn) == TurnStatus.COMPLETED, timeout=120)
        assert not turn.events.filter(kind=EventKind.INTERRUPT).exists()


def test_it_leaves_a_turn_queued_while_the_host_is_full(llm, user, worker_process):
    llm.token_delay = 0.05
    worker_process(Q_WORKERS="1", AGENT_TURNS_PER_WORKER="2")
    first, second, third = start_stories(user, 3)

    wait_for(lambda: streamed_text(first) and streamed_text(second), timeout=60)
    wait_for(lambda: len(streamed_text(first)) > 200, timeout=60)

    assert status_of(third) == TurnStatus.QUEUED
    assert len(llm.requests) == 2
    lifecycle.turn_request_cancel(session=first.session, actor=user)
    wait_for(lambda: streamed_text(third), timeout=60)
    assert status_of(first) == TurnStatus.STOPPED
    assert status_of(second) == TurnStatus.RUNNING
    assert status_of(third) == TurnStatus.RUNNING


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_it_stops_every_hosted_turn_and_exits_in_stop_mode(llm, user, worker_process, signum):
    llm.token_delay = 0.05
    worker = worker_process(Q_WORKERS="1", AGENT_DRAIN_MODE="stop", AGENT_DRAIN_TIMEOUT="0.2")
    turns = start_stories(user, 5)
    wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)
    family = descendants(worker.pid)

    os.killpg(worker.pid, signum)

    assert worker.wait(timeout=PROCESS_EXIT_TIMEOUT) == 0
    assert in_group(worker.pid) == set()
    assert alive(family) == set()
    for turn in turns:
        assert_stopped_once(turn, StopReason.WORKER_DRAIN)
        assert turn.lease_token is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_it_hands_every_hosted_turn_back_and_exits_in_requeue_mode(
    llm, user, worker_process, signum
):
    llm.token_delay = 0.05
    first = worker_process(Q_WORKERS="1", AGENT_DRAIN_MODE="requeue", AGENT_DRAIN_TIMEOUT="0.2")
    turns = start_stories(user, 5)
    wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)

    os.killpg(first.pid, signum)

    assert first.wait(timeout=PROCESS_EXIT_TIMEOUT) == 0
    assert in_group(first.pid) == set()
    for turn in turns:
        turn.refresh_from_db()
        assert turn.status == TurnStatus.QUEUED
        assert turn.lease_token is None
        assert not turn.events.filter(kind=EventKind.INTERRUPT).exists()

    llm.token_delay = 0.001
    worker_process(Q_WORKERS="1")
    for turn in turns:
        wait_for(lambda turn=turn: status_of(turn) == TurnStatus.COMPLETED, timeout=120)
        turn.refresh_from_db()
        assert turn.attempts == 2
        assert not turn.events.filter(kind__in=[EventKind.INTERRUPT, EventKind.ERROR]).exists()


def test_it_recovers_every_turn_of_a_killed_worker(llm, user, worker_process, settings):
    llm.token_delay = 0.05
    settings.AGENT_LEASE_TIMEOUT = 2
    # Heartbeats well within the lease, so the reaper takes only the dead worker's turns.
    doomed = worker_process(Q_WORKERS="1", AGENT_HEARTBEAT_INTERVAL="0.5")
    turns = start_stories(user, 4)
    wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)

    # The machine running it dies: nothing of the cluster gets to say goodbye.
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=PROCESS_EXIT_TIMEOUT)
    llm.token_delay = 0.001
    worker_process(Q_WORKERS="1", AGENT_HEARTBEAT_INTERVAL="0.5")

    wait_for(
        lambda: (
            housekeeping.turns_reap_expired() == 0
            and all(status_of(turn) == TurnStatus.COMPLETED for turn in turns)
        ),
        timeout=120,
        interval=0.5,
    )
    for turn in turns:
        turn.refresh_from_db()
        assert turn.worker_losses == 1
        assert turn.attempts == 2
        assert not turn.events.filter(kind__in=[EventKind.INTERRUPT, EventKind.ERROR]).exists()


def test_a_recycled_worker_process_ends_only_after_its_turns(llm, user, worker_process):
    llm.token_delay = 0.005
    # django-q2 replaces the worker after every task: each delivery ends its task loop.
    worker_process(Q_WORKERS="1", Q_RECYCLE="1")
    turns = start_stories(user, 3)

    for turn in turns:
        wait_for(lambda turn=turn: status_of(turn) == TurnStatus.COMPLETED, timeout=120)
    for turn in turns:
        turn.refresh_from_db()
        assert turn.attempts == 1
        assert turn.worker_losses == 0
        final = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").last()
        assert final.data["text"].endswith("The end.")
        assert not turn.events.filter(kind__in=[EventKind.INTERRUPT, EventKind.ERROR]).exists()


def test_the_task_time_limit_never_applies_to_hosted_turns(llm, user, worker_process):
    llm.token_delay = 0.01
    # A story streams for several seconds, far beyond this time limit for tasks.
    worker_process(Q_WORKERS="1", Q_TASK_TIMEOUT="1", AGENT_TURNS_PER_WORKER="1")
    turns = start_stories(user, 2)

    for turn in turns:
        wait_for(lambda turn=turn: status_of(turn) == TurnStatus.COMPLETED, timeout=120)
        turn.refresh_from_db()
        assert turn.attempts == 1
        assert turn.worker_losses == 0


def test_a_killed_worker_process_leaves_its_cluster_taking_turns(
    llm, user, worker_process, settings
):
    llm.token_delay = 0.05
    settings.AGENT_LEASE_TIMEOUT = 2
    worker_process(Q_WORKERS="2", AGENT_HEARTBEAT_INTERVAL="0.5")
    turns = start_stories(user, 4)
    wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)
    hosting = {int(Turn.objects.get(pk=turn.pk).worker_id.split(":")[1]) for turn in turns}

    # The OOM killer picks one worker process; the cluster's supervisor replaces it.
    victim = min(hosting)
    os.kill(victim, signal.SIGKILL)
    orphaned = [
        turn
        for turn in turns
        if Turn.objects.get(pk=turn.pk).worker_id.split(":")[1] == str(victim)
    ]
    llm.token_delay = 0.001

    wait_for(
        lambda: (
            housekeeping.turns_reap_expired() >= 0
            and all(status_of(turn) == TurnStatus.COMPLETED for turn in turns)
        ),
        timeout=60,
        interval=0.5,
    )
    for turn in orphaned:
        turn.refresh_from_db()
        assert turn.worker_losses == 1
    later = start_stories(user, 4)
    for turn in later:
        wait_for(lambda turn=turn: status_of(turn) == TurnStatus.COMPLETED, timeout=60)
