"""The assistant text of one model call: streamed live in small batches, checkpointed to the
database a few times a second (never per token, and for all of a host's turns in one write).
Each piece of text is sent as a delta exactly once, so the deltas of a call add up to its stored
text."""

import asyncio
import logging
import time
from collections.abc import Callable

from django.conf import settings

from sessions_app.core import broadcast, leases
from sessions_app.runtime.cancel import LEASE_LOST, CancelScope
from sessions_app.runtime.db import DatabaseThreads
from sessions_app.runtime.store import TurnStore

logger = logging.getLogger(__name__)

# How long live text may wait to be sent, so a fast stream goes out in pieces, not per token:
# every live message costs the web process a receive and a socket write, and at 0.05 s a
# hundred streams sent more than one daphne process could pass on (bench/concurrency.py).
DELTA_FLUSH_INTERVAL = 0.1


class AssistantOutput:
    def __init__(
        self,
        *,
        store: TurnStore,
        session_id,
        outbox: broadcast.Outbox,
        checkpointer: "Checkpointer",
        scope: CancelScope,
    ):
        self.store = store
        self.session_id = session_id
        self.outbox = outbox
        self.checkpointer = checkpointer
        self.scope = scope
        self.text = ""
        self.event_id: int | None = None
        self.event_seq: int | None = None
        self._unsent_from = 0
        self._last_flush = 0.0

    async def on_text(self, piece: str) -> None:
        self.text += piece
        if self.event_id is None:
            # The message's first words create its event at once (its seq names the deltas);
            # later text is checkpointed with the host's other turns.
            await self.persist(streaming=True)
            return
        self.checkpointer.mark(self)
        if time.monotonic() - self._last_flush >= DELTA_FLUSH_INTERVAL:
            self.flush_delta()

    async def restart(self) -> None:
        """A retried model call starts its answer again."""
        self.text = ""
        self._unsent_from = 0
        if self.event_id is not None:
            await self.persist(streaming=True)

    def flush_delta(self) -> None:
        if self.event_seq is None or self._unsent_from >= len(self.text):
            return
        payload: broadcast.DeltaPayload = {
            "seq": self.event_seq,
            "turn": self.store.turn_id,
            "offset": self._unsent_from,
            "text": self.text[self._unsent_from :],
        }
        self._unsent_from = len(self.text)
        self._last_flush = time.monotonic()
        broadcast.send_delta(self.outbox, session_id=self.session_id, payload=payload)

    async def persist(self, *, streaming: bool) -> None:
        """Write the text now (the message starts or ends, or a retry restarts it)."""
        self.scope.raise_if_cancelled()
        await self.settle()
        if not self.text and self.event_id is None:
            return
        event = await self.store.save_text(
            event_id=self.event_id, text=self.text, streaming=streaming
        )
        self.event_id, self.event_seq = event.pk, event.seq
        # The event carries this text too, but every piece also goes out once as a delta: a
        # client may follow deltas alone (the page skips what it already has).
        self.flush_delta()

    async def settle(self) -> None:
        """Let a batched checkpoint of this text finish first, so it never overwrites a later
        write of the runner's own (the final text, a restart, the finalizer's partial text)."""
        await self.checkpointer.settle(self)


class Checkpointer:
    """Checkpoints the streaming text of all of a host's turns together, a few times a second,
    in one transaction (``leases.turns_save_streaming_text``), until ``closing()``."""

    def __init__(self, *, db: DatabaseThreads, closing: Callable[[], bool]):
        self._db = db
        self._closing = closing
        self._dirty: dict[AssistantOutput, None] = {}
        self._writing: set[AssistantOutput] = set()
        self._written: asyncio.Future | None = None

    def mark(self, output: AssistantOutput) -> None:
        self._dirty[output] = None

    async def settle(self, output: AssistantOutput) -> None:
        self._dirty.pop(output, None)
        if output in self._writing and self._written is not None:
            await asyncio.shield(self._written)

    async def run(self) -> None:
        while not self._closing():
            await asyncio.sleep(settings.AGENT_CHECKPOINT_INTERVAL)
            try:
                await self._write()
            except Exception:
                logger.warning("streaming text checkpoint failed", exc_info=True)

    async def _write(self) -> None:
        outputs = [output for output in self._dirty if not output.scope.cancelled]
        self._dirty.clear()
        if not outputs:
            return
        checkpoints = [
            output.store.text_checkpoint(event_id=output.event_id, text=output.text)
            for output in outputs
        ]
        self._writing = set(outputs)
        self._written = asyncio.get_running_loop().create_future()
        try:
            lost = await self._db(leases.turns_save_streaming_text, checkpoints=checkpoints)
        finally:
            self._written.set_result(None)
            self._writing = set()
        for output in outputs:
            if output.store.turn_id in lost:
                output.scope.cancel(LEASE_LOST)
