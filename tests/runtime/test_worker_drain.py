"""A worker told to shut down (SIGTERM to its process group) drains its turn."""

import os
import signal

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def start_story(user) -> Turn:
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists(), timeout=60)
    return turn


def test_it_stops_the_turn_with_worker_drain_in_stop_mode(llm, user, worker_process):
    worker = worker_process(AGENT_DRAIN_MODE="stop", AGENT_DRAIN_TIMEOUT="0.2")
    turn = start_story(user)

    # Ctrl-C in the terminal running `manage.py qcluster` signals the whole process group.
    os.killpg(worker.pid, signal.SIGINT)

    wait_for(lambda: Turn.objects.get(pk=turn.pk).is_terminal, timeout=30)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.WORKER_DRAIN
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert worker.wait(timeout=30) == 0


def test_it_hands_the_turn_back_and_another_worker_finishes_it(llm, user, worker_process):
    first = worker_process(AGENT_DRAIN_MODE="requeue", AGENT_DRAIN_TIMEOUT="0.2")
    turn = start_story(user)

    # A process manager stopping the worker's whole process group.
    os.killpg(first.pid, signal.SIGTERM)
    wait_for(lambda: Turn.objects.get(pk=turn.pk).status == TurnStatus.QUEUED, timeout=30)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert turn.lease_token is None
    assert not turn.events.filter(kind=EventKind.INTERRUPT).exists()

    llm.token_delay = 0.001
    worker_process()
    wait_for(lambda: Turn.objects.get(pk=turn.pk).is_terminal, timeout=60)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert turn.attempts == 2
    final = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").last()
    assert final.data["text"].endswith("The end.")
    assert not turn.events.filter(kind__in=[EventKind.INTERRUPT, EventKind.ERROR]).exists()
