"""One turn's reads and writes, as its runner makes them.

A ``TurnStore`` is bound to a turn, the lease token its host took and the host's database
threads: each method runs one core service there (``sessions_app.core``), fenced by that
token, so a runner whose turn was taken over writes nothing (``LeaseLost``).
"""

import uuid
from typing import Any

from sessions_app.core import budgets, leases, lifecycle, selectors, usage
from sessions_app.models import TimelineEvent, Turn
from sessions_app.runtime import history
from sessions_app.runtime.db import DatabaseThreads
from sessions_app.runtime.transcript import PastTurn


class TurnStore:
    def __init__(self, *, turn_id: int, lease: uuid.UUID, db: DatabaseThreads):
        self.turn_id = turn_id
        self.lease = lease
        self._db = db

    async def load(self) -> Turn:
        return await self._db(selectors.turn_to_run, self.turn_id)

    async def history(self, turn: Turn) -> tuple[list[PastTurn], dict[str, Any]]:
        """The session's turns before this one, and what they learned of the context window."""
        return await self._db(history.turn_history, turn)

    async def record(self, kind: str, data: dict[str, Any]) -> TimelineEvent:
        """A timeline event of the turn."""
        return await self._db(
            leases.turn_record_event,
            turn_id=self.turn_id,
            lease_token=self.lease,
            kind=kind,
            data=data,
        )

    async def record_usage(self, *, call: usage.CallUsage, turn_usage: dict[str, Any]) -> None:
        """A model call's tokens, and the turn's usage with them."""
        await self._db(
            usage.model_call_record,
            turn_id=self.turn_id,
            lease_token=self.lease,
            call=call,
            turn_usage=turn_usage,
        )

    async def call_allowance(self, *, user_id: int, model: str) -> budgets.CallAllowance:
        """What the next model call may spend of the user's budgets."""
        return await self._db(budgets.call_allowance, user_id=user_id, model=model)

    async def save_progress(self, *, checkpoint: dict[str, Any], usage: dict[str, Any]) -> None:
        await self._db(
            leases.turn_save_progress,
            turn_id=self.turn_id,
            lease_token=self.lease,
            checkpoint=checkpoint,
            usage=usage,
        )

    async def save_text(self, *, event_id: int | None, text: str, streaming: bool) -> TimelineEvent:
        """The assistant message so far (its event is created by the first call)."""
        return await self._db(
            leases.turn_save_progress,
            turn_id=self.turn_id,
            lease_token=self.lease,
            assistant_event_id=event_id,
            assistant_text=text,
            streaming=streaming,
        )

    def text_checkpoint(self, *, event_id: int, text: str) -> leases.TextCheckpoint:
        """The streaming text, for a host's batched write of all its turns' text."""
        return leases.TextCheckpoint(
            turn_id=self.turn_id, lease_token=self.lease, event_id=event_id, text=text
        )

    async def park(self, *, checkpoint: dict[str, Any], calls: list[dict[str, Any]]) -> bool:
        """Wait for approval of ``calls``; False when a stop came first."""
        return await self._db(
            lifecycle.turn_park_for_approval,
            turn_id=self.turn_id,
            lease_token=self.lease,
            checkpoint=checkpoint,
            calls=calls,
        )

    async def stop_reason(self) -> str:
        return await self._db(selectors.turn_stop_reason, self.turn_id)

    async def requeue(self, *, partial_text: str | None, event_id: int | None) -> bool:
        """Back to the queue, to resume elsewhere; False when a stop is under way."""
        return await self._db(
            leases.turn_requeue,
            turn_id=self.turn_id,
            lease_token=self.lease,
            partial_text=partial_text,
            assistant_event_id=event_id,
        )

    async def finalize(
        self,
        status: str,
        *,
        stop_reason: str = "",
        error_code: str = "",
        detail: str = "",
        partial_text: str | None = None,
        event_id: int | None = None,
    ) -> Turn:
        """Record the turn's end; the turn as it ended (stopped, when a stop came first)."""
        return await self._db(
            lifecycle.turn_finalize,
            turn_id=self.turn_id,
            status=status,
            lease_token=self.lease,
            stop_reason=stop_reason,
            error_code=error_code,
            error_detail=detail,
            partial_text=partial_text,
            assistant_event_id=event_id,
        )

    async def start_child(self, task: str) -> "TurnStore":
        """A sub-agent's turn, under this turn's lease; the store of the child."""
        child = await self._db(
            lifecycle.child_turn_start, parent_id=self.turn_id, lease_token=self.lease, task=task
        )
        return TurnStore(turn_id=child.pk, lease=self.lease, db=self._db)

    async def answer(self) -> str:
        """The turn's final answer ("" when it gave none)."""
        return await self._db(selectors.turn_answer, self.turn_id)
