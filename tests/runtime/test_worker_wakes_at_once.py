"""A queued turn reaches a free worker without waiting for the broker's poll: the turn hosts are
offered it over the channel layer as it is queued, and the broker's delivery stays the backstop
that finds it running."""

import pytest

from agentproj.vocabulary import TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# The broker looks for new tasks this rarely: a turn that starts within the bound below, right
# after a poll brought the first one, was not brought by the next poll.
BROKER_POLL_SECONDS = "10"
# Bounds how long a broken test waits; well under the poll above.
STARTS_WITHIN = 4.0


def ended(turn_id: int) -> bool:
    return Turn.objects.get(pk=turn_id).status in (TurnStatus.COMPLETED, TurnStatus.FAILED)


def test_a_worker_takes_a_queued_turn_without_waiting_for_the_poll(llm, user, worker_process):
    worker_process(Q_POLL=BROKER_POLL_SECONDS)
    session = sessions.session_create(owner=user, title="Wake")
    # Whoever brings this one (the cluster's first look at the broker as it starts, or an
    # offer), once it has run the broker's next look is most of a poll away.
    first = lifecycle.turn_start(session=session, message="hello", actor=user)
    wait_for(lambda: ended(first.pk), timeout=60)

    second = lifecycle.turn_start(session=session, message="hello again", actor=user)

    started = wait_for(
        lambda: Turn.objects.get(pk=second.pk).started_at is not None, timeout=STARTS_WITHIN
    )
    assert started
    wait_for(lambda: ended(second.pk), timeout=60)
    assert Turn.objects.get(pk=second.pk).status == TurnStatus.COMPLETED
