"""What a turn's model calls spend: the budget each may use (read as it starts), the stop of the
whole turn once a streamed answer uses it up, and the record of every call's tokens, reported by
the server or estimated from the text (``core.usage``)."""

import json
import logging
from dataclasses import dataclass
from typing import Any

from agentproj.vocabulary import StopReason
from sessions_app.core import budgets, usage
from sessions_app.core.errors import LeaseLost
from sessions_app.runtime import llm
from sessions_app.runtime.cancel import LEASE_LOST, AgentStopped, CancelScope
from sessions_app.runtime.store import TurnStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCall:
    """The model call under way: its model, its input's tokens (estimated: a server tells only
    at the end) and what it may spend of its user's budgets."""

    model: str
    input_tokens: int
    allowance: budgets.CallAllowance

    def estimate(self, output_chars: int) -> usage.CallUsage:
        """What it used so far, as far as its text tells."""
        return usage.CallUsage(
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=usage.estimate_tokens(output_chars),
            estimated=True,
        )


class Spending:
    """One turn's spending, for the budgets of ``owner_id`` (its session's owner: a sub-agent's
    turn spends its parent's user's). A budget used up stops the top-level turn, sub-agents and
    all (``CancelScope.root``)."""

    def __init__(self, *, store: TurnStore, scope: CancelScope, owner_id: int):
        self.store = store
        self.scope = scope
        self.owner_id = owner_id
        self.allowance: budgets.CallAllowance | None = None
        self.call: ModelCall | None = None

    async def before_call(self, model: str) -> None:
        """Read what the next call may spend; with a budget used up, the turn stops here."""
        self.call = None
        self.allowance = await self.store.call_allowance(user_id=self.owner_id, model=model)
        if self.allowance.state.exhausted:
            self.scope.root.cancel(StopReason.BUDGET_EXHAUSTED)
            self.scope.raise_if_cancelled()

    def sending(self, *, model: str, messages: list[dict[str, Any]], specs: list[dict]) -> None:
        """The call (or its retry with a shorter input) is about to be sent."""
        self.call = ModelCall(
            model=model,
            input_tokens=usage.estimate_tokens(len(json.dumps(messages)) + len(json.dumps(specs))),
            allowance=self.allowance,
        )

    def streamed(self, output_chars: int) -> None:
        """The answer has ``output_chars`` so far: once that uses up a budget, stop the turn as
        a user's stop would (the stream closed at once, the text kept). No query: compared with
        what was left when the call started."""
        estimate = self.call.estimate(output_chars)
        if self.call.allowance.crossed_by(
            input_tokens=estimate.input_tokens, output_tokens=estimate.output_tokens
        ):
            self.scope.root.cancel(StopReason.BUDGET_EXHAUSTED)

    async def answered(self, turn_usage: dict[str, Any], reply: llm.ModelReply) -> None:
        """Record the call's tokens as its server reported them, else as estimated."""
        if reply.usage:
            used = usage.CallUsage(
                model=self.call.model,
                input_tokens=reply.usage["prompt_tokens"],
                output_tokens=reply.usage["completion_tokens"],
                cached_tokens=reply.usage["cached_tokens"],
            )
        else:
            used = self.call.estimate(reply.output_chars)
        await self._record(turn_usage, used)

    async def cut_short(self, turn_usage: dict[str, Any], cut: Exception, text: str) -> None:
        """A call that was stopped, or failed after writing ``text``, used tokens its server
        never reported: record them as estimated. Its stop or failure goes on whatever happens
        here: a turn whose record failed still stops."""
        if self.call is None or (isinstance(cut, AgentStopped) and cut.reason == LEASE_LOST):
            return
        if isinstance(cut, llm.LLMError) and not text:
            return
        try:
            await self._record(turn_usage, self.call.estimate(len(text)))
        except LeaseLost:
            # The turn went with its deleted session, or another worker has it: its records
            # are no longer this runner's to write.
            return
        except Exception:
            logger.warning(
                "turn %s: a model call's usage went unrecorded", self.store.turn_id, exc_info=True
            )

    async def _record(self, turn_usage: dict[str, Any], used: usage.CallUsage) -> None:
        used.add_to(turn_usage)
        await self.store.record_usage(call=used, turn_usage=turn_usage)
