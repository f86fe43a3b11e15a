"""Cooperative stopping for the agent loop.

A ``CancelScope`` belongs to one running turn; a sub-agent's scope is a child of its parent's, so
stopping a parent stops everything below it. Whoever runs a turn passes its scope to what must
stop with it (the model call, a tool run, the streamed text).
"""

import asyncio

from agentproj.vocabulary import StopReason

# Internal stop reason, never written to a turn: another owner took the turn over.
LEASE_LOST = "lease_lost"


class AgentStopped(Exception):
    """Raised at a structural boundary once the turn's scope is cancelled."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CancelScope:
    def __init__(self, parent: "CancelScope | None" = None):
        self._event = asyncio.Event()
        self._children: list[CancelScope] = []
        self.parent = parent
        self.reason = ""
        if parent is not None:
            parent._children.append(self)
            if parent.cancelled:
                self.cancel(StopReason.PARENT_STOPPED)

    @property
    def root(self) -> "CancelScope":
        """The scope of the top-level turn: what stops the whole turn, sub-agents included."""
        return self if self.parent is None else self.parent.root

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str) -> None:
        if self.cancelled:
            return
        self.reason = reason
        self._event.set()
        for child in self._children:
            child.cancel(StopReason.PARENT_STOPPED)

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise AgentStopped(self.reason)

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep that a stop cuts short (retry back-off, for example)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise AgentStopped(self.reason)

    async def run(self, coro, *, interruptible: bool = True):
        """Await ``coro`` unless the scope is cancelled first.

        Interruptible work is cancelled at once and ``AgentStopped`` raised. Other work is
        allowed to finish and its result returned; the caller's next boundary check stops.
        """
        self.raise_if_cancelled()
        work = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            stop.cancel()
        if work.done():
            return work.result()
        if not interruptible:
            return await work
        work.cancel()
        await asyncio.wait({work})
        if not work.cancelled():
            # Whatever the interrupted work raised is a consequence of cancelling it.
            work.exception()
        raise AgentStopped(self.reason)
