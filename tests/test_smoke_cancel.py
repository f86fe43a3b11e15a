import pytest

from sessions_app import services
from sessions_app.models import EventKind, TurnStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_stops_a_streaming_turn(llm, user, run_turn_in_thread):
    session = services.session_create(owner=user)
    turn = services.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(turn.pk)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())
    services.turn_request_cancel(session=session, actor=user)
    assert thread.join() == TurnStatus.STOPPED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
