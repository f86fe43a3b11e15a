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
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from django.conf import settings

from agentproj.vocabulary import TURN_QUEUED_MESSAGE_TYPE, StopReason, TurnStatus
from sessions_app.core import broadcast, leases, selectors
from sessions_app.runtime.cancel import LEASE_LOST, CancelScope
from sessions_app.runtime.db import DatabaseThreads

logger = logging.getLogger(__name__)

# Group memberships expire on Redis (a day by default): a host renews its own well before.
HOSTS_GROUP_REJOIN = 3600.0


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
        offered: Callable[[int], Awaitable[None]] | None = None,
    ):
        self.worker_id = worker_id
        self.turns = turns
        self._db = db
        self._layer = layer
        self._closing = closing
        self._offered = offered
        self._offers: set[asyncio.Task] = set()

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
        """Route cancels sent to the host's channel to the turns they name; with ``offered``,
        also take the turns queued meanwhile (``broadcast.offer_to_hosts``)."""
        channel = broadcast.host_control_channel(self.worker_id)
        joined_at = None
        # Also ends on the host's flag: a channel-layer client may swallow the cancellation.
        while not self._closing():
            try:
                if self._offered is not None and (
                    joined_at is None or time.monotonic() - joined_at > HOSTS_GROUP_REJOIN
                ):
                    await self._layer.group_add(broadcast.TURN_HOSTS_GROUP, channel)
                    joined_at = time.monotonic()
                message = await self._layer.receive(channel)
            except Exception:
                # The row backstop still works; try the fast path again shortly.
                logger.warning("host %s: control channel failed", self.worker_id, exc_info=True)
                await asyncio.sleep(settings.AGENT_CANCEL_POLL_INTERVAL)
                continue
            if message.get("type") == TURN_QUEUED_MESSAGE_TYPE:
                self._offer(message.get("turn"))
                continue
            hosted = self.turns.get(message.get("turn"))
            if hosted is not None and message.get("action") == "cancel":
                hosted.scope.cancel(message.get("reason") or StopReason.USER_CANCEL)

    def _offer(self, turn_id) -> None:
        # Taken on a task of its own: a lease being taken must never hold up a cancel.
        if self._offered is None or not isinstance(turn_id, int) or turn_id in self.turns:
            return
        task = asyncio.create_task(self._offered(turn_id))
        self._offers.add(task)
        task.add_done_callback(self._offer_done)

    def _offer_done(self, task: asyncio.Task) -> None:
        self._offers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "host %s: taking an offered turn failed", self.worker_id, exc_info=task.exception()
            )

    async def leave(self) -> None:
        """Stop being offered turns (the host is closing)."""
        if self._offered is None:
            return
        channel = broadcast.host_control_channel(self.worker_id)
        try:
            await self._layer.group_discard(broadcast.TURN_HOSTS_GROUP, channel)
        except Exception:
            logger.warning("host %s: leaving the hosts failed", self.worker_id, exc_info=True)
