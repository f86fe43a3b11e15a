"""The assistant text of one model call: streamed live in small batches, checkpointed to the
database a few times a second (never per token). Each piece of text is sent as a delta exactly
once, so the deltas of a call add up to its stored text."""

import time
from typing import TYPE_CHECKING

from django.conf import settings

from .. import events, services

if TYPE_CHECKING:
    from .runner import TurnRunner

# How long live text may wait to be sent, so a fast stream is sent in pieces, not per token.
DELTA_FLUSH_INTERVAL = 0.05


class AssistantOutput:
    def __init__(self, runner: "TurnRunner"):
        self.runner = runner
        self.text = ""
        self.event_id: int | None = None
        self.event_seq: int | None = None
        self._last_persist = 0.0
        self._unsent_from = 0
        self._last_flush = 0.0

    async def on_text(self, piece: str) -> None:
        self.text += piece
        now = time.monotonic()
        if self.event_id is None or now - self._last_persist >= settings.AGENT_CHECKPOINT_INTERVAL:
            await self.persist(streaming=True)
        elif now - self._last_flush >= DELTA_FLUSH_INTERVAL:
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
        runner = self.runner
        payload: events.DeltaPayload = {
            "seq": self.event_seq,
            "turn": runner.turn_id,
            "offset": self._unsent_from,
            "text": self.text[self._unsent_from :],
        }
        self._unsent_from = len(self.text)
        self._last_flush = time.monotonic()
        events.send_delta(runner.host.outbox, session_id=runner.session_id, payload=payload)

    async def persist(self, *, streaming: bool) -> None:
        runner = self.runner
        runner.scope.raise_if_cancelled()
        if not self.text and self.event_id is None:
            return
        event = await runner.host.db(
            services.turn_save_progress,
            turn_id=runner.turn_id,
            lease_token=runner.lease,
            assistant_event_id=self.event_id,
            assistant_text=self.text,
            streaming=streaming,
        )
        self.event_id, self.event_seq = event.pk, event.seq
        self._last_persist = time.monotonic()
        # The checkpoint's event carries this text too, but every piece also goes out once as a
        # delta: a client may follow deltas alone (the page skips what it already has).
        self.flush_delta()
