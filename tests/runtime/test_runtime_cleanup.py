"""A turn host's pooled HTTP client to the model serves its turns and is closed with the host,
however its turns ended: completed, failed or stopped."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.runtime import llm as llm_module
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def made_clients(monkeypatch):
    clients = []
    make_client = llm_module.make_client

    def recording_make_client(**kwargs):
        client = make_client(**kwargs)
        clients.append(client)
        return client

    monkeypatch.setattr(llm_module, "make_client", recording_make_client)
    return clients


def _start(user, message: str):
    session = sessions.session_create(owner=user)
    return session, lifecycle.turn_start(session=session, message=message, actor=user)


def test_it_closes_the_client_when_the_turn_completes(llm, user, run_turn_in_thread, made_clients):
    _, turn = _start(user, "hello")
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert len(made_clients) == 1
    assert made_clients[0].is_closed


def test_it_closes_the_client_when_the_turn_fails(
    llm, user, run_turn_in_thread, made_clients, settings
):
    settings.LLM_MAX_RETRIES = 0
    llm.fail(500)
    _, turn = _start(user, "hello")
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.FAILED
    assert len(made_clients) == 1
    assert made_clients[0].is_closed


def test_it_closes_the_client_when_the_turn_is_stopped(llm, user, run_turn_in_thread, made_clients):
    session, turn = _start(user, "tell me a story")
    thread = run_turn_in_thread(turn.pk)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())
    lifecycle.turn_request_cancel(session=session, actor=user)
    assert thread.join() == TurnStatus.STOPPED
    assert len(made_clients) == 1
    assert made_clients[0].is_closed
