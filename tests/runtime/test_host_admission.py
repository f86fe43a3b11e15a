"""A turn whose lease a host is taking at the moment it is told to drain is drained with the
others: it never keeps running on a host that has closed (its database threads gone), holding a
lease until the reaper notices.

Seen in the chaos soak: a worker SIGTERMed while a delivery was being admitted logged
"cannot schedule new futures after shutdown" for that turn.
"""

import asyncio
import threading

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.core import leases, lifecycle, sessions
from sessions_app.models import Turn
from sessions_app.runtime.host import TurnHost

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

BOUND = 30.0


def test_a_turn_admitted_while_the_host_drains_is_drained_too(llm, user, settings, monkeypatch):
    settings.AGENT_DRAIN_MODE = "stop"
    llm.stall()
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    lease_asked, lease_may_go = threading.Event(), threading.Event()
    take_lease = leases.turn_take_lease

    def slow_take_lease(**kwargs):
        lease_asked.set()
        assert lease_may_go.wait(BOUND)
        return take_lease(**kwargs)

    monkeypatch.setattr(leases, "turn_take_lease", slow_take_lease)

    async def drain_during_admission():
        async with TurnHost(capacity=5) as host:
            admitting = asyncio.create_task(host.admit(turn.pk))
            assert await asyncio.to_thread(lease_asked.wait, BOUND)
            draining = asyncio.create_task(host.drain(0.0))
            # The drain starts (and stops accepting) before the lease comes back.
            await asyncio.sleep(0)
            lease_may_go.set()
            await asyncio.wait_for(draining, BOUND)
            await asyncio.wait_for(admitting, BOUND)

    asyncio.run(drain_during_admission())

    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.WORKER_DRAIN
    assert turn.lease_token is None
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert Turn.objects.filter(pk=turn.pk, worker_id="").exists()
