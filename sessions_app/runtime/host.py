"""The turn host: one asyncio event loop that runs many turns at once.

A streaming turn spends nearly all its time waiting on the model server, so one loop can host
dozens. What every turn needs is shared per host, not made per turn: database threads, one
pooled HTTP client to the model, one channel-layer connection and its outbox, the batched
checkpoint of streaming text (``output.Checkpointer``), one control listener that routes cancels
to the turn they name and one heartbeat and backstop read for all hosted turns
(``watch.TurnWatch``), and one connection to each MCP server its turns use
(``mcp.on_demand.HostServers``), closed with the host. Each turn gets what it uses of these
(``loop.HostResources``) and a ``TurnStore`` bound to its lease.

A worker process runs one host (``runtime.worker``); tests run a host for one turn in a thread.
"""

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.layers import channel_layers
from django.conf import settings

from agentproj import metrics
from agentproj.vocabulary import StopReason
from approvals_app.gate import ApprovalGate
from sessions_app.core import broadcast, leases
from sessions_app.mcp import registry
from sessions_app.mcp.on_demand import HostServers
from sessions_app.runtime import llm
from sessions_app.runtime.cancel import LEASE_LOST, CancelScope
from sessions_app.runtime.db import DatabaseThreads
from sessions_app.runtime.loop import HostResources, TurnRunner
from sessions_app.runtime.output import Checkpointer
from sessions_app.runtime.store import TurnStore
from sessions_app.runtime.watch import TurnWatch

logger = logging.getLogger(__name__)

# How long a closing host waits for its background loops; one stuck in a channel-layer or
# database call must not keep the process from exiting.
BACKGROUND_STOP_TIMEOUT = 5.0
# After the drain's grace, how long stopped turns get to record their end before the host
# gives up on them (the reaper finalizes what is left once their leases expire).
DRAIN_FINALIZE_GRACE = 5.0


@dataclass
class HostedTurn:
    turn_id: int
    lease: uuid.UUID
    scope: CancelScope = field(default_factory=CancelScope)
    task: asyncio.Task | None = None


class TurnHost:
    def __init__(
        self, *, capacity: int, offered: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        """``offered``: what to do when a turn is queued anywhere (``watch.TurnWatch``); a
        worker process's host takes it if it has room. Without it the host only runs the turns
        it is given."""
        self.capacity = capacity
        self._offered = offered
        # Unique per host, written into every turn it takes: it names the host's control
        # channel and fences its batched heartbeat (several hosts may share a process in tests).
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.turns: dict[int, HostedTurn] = {}
        self.accepting = True
        self.closing = False
        self._background: list[asyncio.Task] = []
        # Admissions under way: a drain or close waits for them, so that a turn whose lease was
        # being taken when the host stopped accepting is drained like the others, not left
        # running on a host that has closed.
        self._admitting = 0
        self._no_admissions = asyncio.Event()
        self._no_admissions.set()

    async def __aenter__(self) -> "TurnHost":
        self.client = llm.make_client(connections=self.capacity)
        self.layer = channel_layers.make_backend("default")
        self.outbox = broadcast.Outbox(self.layer)
        self.db = DatabaseThreads(settings.AGENT_DB_THREADS, "turn-db", outbox=self.outbox)
        self.mcp = HostServers(db=self.db)
        # A thread of its own: turns busy with the database never delay a heartbeat or a stop.
        self.watch_db = DatabaseThreads(1, "turn-watch", outbox=self.outbox)
        checkpointer = Checkpointer(db=self.db, closing=lambda: self.closing)
        self.watch = watch = TurnWatch(
            worker_id=self.worker_id,
            turns=self.turns,
            db=self.watch_db,
            layer=self.layer,
            closing=lambda: self.closing,
            offered=self._offered,
        )
        self.resources = HostResources(
            db=self.db,
            client=self.client,
            outbox=self.outbox,
            checkpointer=checkpointer,
            approvals=ApprovalGate(),
            mcp_tools=self.mcp.tools_for_turn,
            accepting=lambda: self.accepting,
        )
        try:
            await self.db(registry.mcp_server_sync_declared)
        except Exception:
            logger.exception("the MCP servers of AGENT_MCP_SERVERS could not be recorded")
        metrics.HOST_CAPACITY.inc(self.capacity)
        self._background = [
            asyncio.create_task(checkpointer.run()),
            asyncio.create_task(watch.listen_for_control()),
            asyncio.create_task(watch.keep_leases()),
        ]
        return self

    async def __aexit__(self, *exc_info) -> None:
        metrics.HOST_CAPACITY.dec(self.capacity)
        await self._stop_accepting()
        await self.watch.leave()
        running = [hosted.task for hosted in self.turns.values() if hosted.task]
        for task in running:
            task.cancel()
        if running:
            done, stuck = await asyncio.wait(running, timeout=BACKGROUND_STOP_TIMEOUT)
            for task in done:
                if not task.cancelled():
                    task.exception()
            if stuck:
                logger.warning("host %s: %d turns did not unwind", self.worker_id, len(stuck))
        self.closing = True
        await self.mcp.close()
        await self.outbox.close(timeout=BACKGROUND_STOP_TIMEOUT)
        for task in self._background:
            task.cancel()
        _, stuck = await asyncio.wait(self._background, timeout=BACKGROUND_STOP_TIMEOUT)
        if stuck:
            logger.warning("host %s: %d background loops did not stop", self.worker_id, len(stuck))
        await self.client.aclose()
        await _close_layer(self.layer)
        await self.db.close()
        await self.watch_db.close()

    async def admit(self, turn_id: int) -> HostedTurn | None:
        """Take the turn's lease and start running it; None when there is nothing to run
        (delivered twice, or already finished or stopped elsewhere: at-least-once delivery)."""
        if not self.accepting:
            return None
        self._admitting += 1
        self._no_admissions.clear()
        try:
            return await self._take(turn_id)
        finally:
            self._admitting -= 1
            if not self._admitting:
                self._no_admissions.set()

    async def _take(self, turn_id: int) -> HostedTurn | None:
        lease = await self.db(leases.turn_take_lease, turn_id=turn_id, worker_id=self.worker_id)
        if lease is None:
            return None
        previous = self.turns.get(turn_id)
        if previous is not None:
            # The turn was reaped from this very host (it stalled) and handed back to it.
            previous.scope.cancel(LEASE_LOST)
        hosted = HostedTurn(turn_id=turn_id, lease=lease)
        self.turns[turn_id] = hosted
        hosted.task = asyncio.create_task(self._drive(hosted), name=f"turn-{turn_id}")
        return hosted

    async def _drive(self, hosted: HostedTurn) -> str:
        store = TurnStore(turn_id=hosted.turn_id, lease=hosted.lease, db=self.db)
        metrics.HOST_TURNS.inc()
        try:
            return await TurnRunner(store=store, scope=hosted.scope, resources=self.resources).run()
        finally:
            metrics.HOST_TURNS.dec()
            if self.turns.get(hosted.turn_id) is hosted:
                del self.turns[hosted.turn_id]

    async def drain(self, grace: float) -> None:
        """Take no more turns; let hosted ones go on for ``grace`` seconds, then stop them with
        ``worker_drain`` (each is handed back to the queue or finalized, per
        ``AGENT_DRAIN_MODE``)."""
        await self._stop_accepting()
        pending = [hosted.task for hosted in self.turns.values() if hosted.task]
        if not pending:
            return
        logger.info("draining %d turns for up to %ss", len(pending), grace)
        _, still_running = await asyncio.wait(pending, timeout=grace)
        if not still_running:
            return
        for hosted in list(self.turns.values()):
            hosted.scope.cancel(StopReason.WORKER_DRAIN)
        _, stuck = await asyncio.wait(still_running, timeout=DRAIN_FINALIZE_GRACE)
        if stuck:
            logger.warning(
                "%d turns did not finish draining; the reaper will see to them", len(stuck)
            )

    async def finish(self) -> None:
        """Take no more turns and wait for the hosted ones to end by themselves."""
        await self._stop_accepting()
        pending = [hosted.task for hosted in self.turns.values() if hosted.task]
        if pending:
            await asyncio.wait(pending)

    async def _stop_accepting(self) -> None:
        self.accepting = False
        await self._no_admissions.wait()


async def _close_layer(layer) -> None:
    closer = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if closer is not None:
        await closer()
