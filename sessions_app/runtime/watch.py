"""How a host learns that one of its turns must stop, and keeps their leases alive.

Per host, not per turn: one control listener on the host's own channel (the fast path: a cancel
accepted by any web process arrives within a channel-layer hop), and one loop that refreshes
every lease in one statement and re-reads every hosted turn's row in one query (the backstop,
about once a second, for a control message that was lost). Both run their database calls on a
thread of their own, so turns busy with the database, or a tool blocking a thread, never delay
a heartbeat or a stop.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

from django.conf import settings

from agentproj.vocabulary import StopReason, TurnStatus
from sessions_app.core import broadcast, leases, selectors
from sessions_app.runtime.cancel import LEASE_LOST, CancelScope
from sessions_app.runtime.db import DatabaseThreads

logger = logging.getLogger(__name__)


class WatchedTurn(Protocol):
    lease: uuid.UUID
    scope: CancelScope


class TurnWatch:
    """The watch over the turns a host runs (``turns``, the host's own mapping, read live),
    until ``closing()``."""

    def __init__(
        self,
        *,
        worker_id: str,
        turns: Mapping[int, WatchedTurn],
        db: DatabaseThreads,
        layer,
        closing: Callable[[], bool],
    ):
        self.worker_id = worker_id
        self.turns = turns
        self._db = db
        self._layer = layer
        self._closing = closing

    async def keep_leases(self) -> None:
        """Heartbeat and backstop for all hosted turns. A failed check is logged and tried
        again: a database hiccup must not switch Stop off."""
        last_beat = time.monotonic()
        while not self._closing():
            await asyncio.sleep(settings.AGENT_CANCEL_POLL_INTERVAL)
            try:
                if time.monotonic() - last_beat >= settings.AGENT_HEARTBEAT_INTERVAL:
                    await self._db(
                        leases.turns_heartbeat, worker_id=self.worker_id, turn_ids=list(self.turns)
                    )
                    last_beat = time.monotonic()
                await self._look_at_rows()
            except Exception:
                logger.warning("host %s: checking its turns failed", self.worker_id, exc_info=True)

    async def _look_at_rows(self) -> None:
        watched = {
            turn_id: hosted for turn_id, hosted in self.turns.items() if not hosted.scope.cancelled
        }
        if not watched:
            return
        states = await self._db(selectors.turns_lease_state, watched.keys())
        for turn_id, hosted in watched.items():
            state = states.get(turn_id)
            if state is None or state.lease_token != hosted.lease:
                hosted.scope.cancel(LEASE_LOST)
            elif state.status == TurnStatus.STOPPING:
                hosted.scope.cancel(state.stop_reason or StopReason.USER_CANCEL)

    async def listen_for_control(self) -> None:
        """Route cancels sent to the host's channel to the turns they name."""
        channel = broadcast.host_control_channel(self.worker_id)
        # Also ends on the host's flag: a channel-layer client may swallow the cancellation.
        while not self._closing():
            try:
                message = await self._layer.receive(channel)
            except Exception:
                # The row backstop still works; try the fast path again shortly.
                logger.warning("host %s: control channel failed", self.worker_id, exc_info=True)
                await asyncio.sleep(settings.AGENT_CANCEL_POLL_INTERVAL)
                continue
            hosted = self.turns.get(message.get("turn"))
            if hosted is not None and message.get("action") == "cancel":
                hosted.scope.cancel(message.get("reason") or StopReason.USER_CANCEL)
