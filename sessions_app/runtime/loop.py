"""One turn of the agent: call the model, run or park its tool calls, until it answers.

The database is the source of truth; a runner only ever changes it through its ``TurnStore``,
with the lease token its host took, so a stale runner writes nothing. Each tool call passes the
turn's ``ToolGate`` first. What a runner uses of its host (database threads, the HTTP client to
the model, the outbox, the batched checkpoint, MCP servers' tools) it gets as ``HostResources``.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from agentproj import metrics, tracing
from agentproj.vocabulary import ErrorCode, EventKind, StopReason, TurnStatus
from approvals_app.gate import ApprovalGate
from sessions_app.core import agents, broadcast, errors
from sessions_app.models import Turn
from sessions_app.runtime import llm, tools, transcript
from sessions_app.runtime.cancel import LEASE_LOST, AgentStopped, CancelScope
from sessions_app.runtime.db import DatabaseThreads
from sessions_app.runtime.gate import Passage, ToolGate
from sessions_app.runtime.output import AssistantOutput, Checkpointer
from sessions_app.runtime.spending import Spending
from sessions_app.runtime.state import TurnState
from sessions_app.runtime.store import TurnStore

logger = logging.getLogger(__name__)

REQUEUED = "requeued"
NO_SUB_AGENT_ANSWER = "(the sub-agent gave no answer)"
# The database went away (restarted, unreachable, no pooled connection in time), as opposed to
# refusing a statement.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
# How long a turn waits before it tries again to record its end while the database is down,
# and for how long it keeps trying; after that, or once its host stops taking turns, it leaves
# the turn to the reaper (its heartbeat stops with it), as a worker that died would.
FINALIZE_RETRY_INTERVAL = 1.0
FINALIZE_RETRY_FOR = 300.0


@dataclass(frozen=True)
class HostResources:
    """What a turn uses of its host, shared with the host's other turns."""

    db: DatabaseThreads
    client: httpx.AsyncClient
    outbox: broadcast.Outbox
    checkpointer: Checkpointer
    approvals: ApprovalGate
    # The tools of the MCP servers enabled now.
    mcp_tools: Callable[[], Awaitable[dict[str, tools.Tool]]]
    # False once the host stops taking turns (it drains or closes).
    accepting: Callable[[], bool]


class TurnRunner:
    def __init__(
        self,
        *,
        store: TurnStore,
        scope: CancelScope,
        resources: HostResources,
        trace_parent: tracing.Context | None = None,
    ):
        """``trace_parent``: the parent of the run's ``invoke_agent`` span, for a sub-agent (its
        parent's ``execute_tool`` span); a top-level turn's comes from its row, the request
        that started it."""
        self.store = store
        self.scope = scope
        self.resources = resources
        self.trace_parent = trace_parent
        # The run's invoke_agent span, from when the turn is loaded, and its children's context.
        self.span: tracing.Span = tracing.NO_SPAN
        self.trace = tracing.Context()
        self.started_ns = 0
        # The turn as its end was recorded, once it was.
        self.ended: Turn | None = None
        self.turn_id = store.turn_id
        self.session_id = None
        self.is_sub_agent = False
        # The turn's snapshot of its agent profile (``agents.agent_snapshot``).
        self.agent: dict[str, Any] = {}
        self.gate: ToolGate | None = None
        self.output: AssistantOutput | None = None
        self.spending: Spending | None = None
        # When the user sent the message whose first answer this run has yet to send.
        self.first_text_awaited_since: datetime | None = None

    async def run(self) -> str:
        """Run the turn to wherever it ends here; returns how it ended."""
        self.started_ns = time.time_ns()
        outcome = ""
        try:
            outcome = await self._run_to_end()
            return outcome
        finally:
            self._end_span(outcome)

    def _end_span(self, outcome: str) -> None:
        """End the run's span with how the run ended: the turn's end as recorded (a stop wins
        over what the run was about to report), else what the run returned (waiting for
        approval, handed back, lease lost). Only a failed turn's span is an error."""
        ended = self.ended
        status = ended.status if ended is not None else outcome
        if status:
            self.span.set_attribute(tracing.TURN_STATUS, status)
        if ended is not None and ended.stop_reason:
            self.span.set_attribute(tracing.STOP_REASON, ended.stop_reason)
        if ended is not None and ended.status == TurnStatus.FAILED:
            tracing.fail(self.span, ended.error_code or ErrorCode.INTERNAL_ERROR)
        self.span.end()

    async def _run_to_end(self) -> str:
        try:
            return await self._run()
        except AgentStopped as stop:
            return await self._stopped(stop.reason)
        except asyncio.CancelledError:
            # A parent cancelling this sub-agent's task: record the stop (once: the parent waits
            # for it), then let it unwind. A top-level turn's task is cancelled only by its host
            # closing, which leaves the turn to the reaper.
            if self.is_sub_agent and self.scope.cancelled:
                await self._finalize(
                    TurnStatus.STOPPED, stop_reason=StopReason.PARENT_STOPPED, retry=False
                )
            raise
        except llm.LLMError as exc:
            logger.warning("turn %s: model failed: %s", self.turn_id, exc.user_message)
            await self._finalize(
                TurnStatus.FAILED, error_code=ErrorCode.LLM_ERROR, detail=exc.user_message
            )
            return TurnStatus.FAILED
        except errors.LeaseLost:
            logger.warning("turn %s: lease lost; leaving it to its new owner", self.turn_id)
            return LEASE_LOST
        except DATABASE_UNAVAILABLE:
            logger.exception("turn %s: the database failed under it", self.turn_id)
            await self._finalize(TurnStatus.FAILED, error_code=ErrorCode.PERSISTENCE_ERROR)
            return TurnStatus.FAILED
        except Exception:
            logger.exception("turn %s failed", self.turn_id)
            await self._finalize(TurnStatus.FAILED, error_code=ErrorCode.INTERNAL_ERROR)
            return TurnStatus.FAILED

    async def _stopped(self, reason: str) -> str:
        if reason == LEASE_LOST:
            logger.warning("turn %s: lease lost; leaving it to its new owner", self.turn_id)
            return LEASE_LOST
        if reason == StopReason.WORKER_DRAIN and await self._hand_back():
            return REQUEUED
        await self._finalize(TurnStatus.STOPPED, stop_reason=reason or StopReason.USER_CANCEL)
        return TurnStatus.STOPPED

    async def _run(self) -> str:
        state, available = await self._load()
        if state.awaiting_approval:
            await self._apply_decisions(state, available)
        while True:
            self.scope.raise_if_cancelled()
            if state.model_calls >= agents.max_model_calls_for(self.agent):
                await self._finalize(TurnStatus.FAILED, error_code=ErrorCode.MODEL_CALL_LIMIT)
                return TurnStatus.FAILED
            reply = await self._call_model(state, available)
            if not reply.tool_calls:
                await self._finalize(TurnStatus.COMPLETED)
                return TurnStatus.COMPLETED
            awaiting = await self._handle_tool_calls(state, reply.tool_calls, available)
            if awaiting:
                return await self._park(state, awaiting)

    async def _load(self) -> tuple[TurnState, dict[str, tools.Tool]]:
        """The turn's state, and the tools it may use: those of its kind of turn that its agent
        profile allows."""
        turn = await self.store.load()
        self.session_id = turn.session_id
        self.spending = Spending(store=self.store, scope=self.scope, owner_id=turn.session.owner_id)
        self.is_sub_agent = turn.parent_id is not None
        self.agent = turn.agent_snapshot
        self._start_span(turn)
        # Only a turn's first run answers the message first: later runs resume after a tool's
        # approval or a worker's drain, and a sub-agent's task comes from no user.
        if not self.is_sub_agent and turn.attempts == 1:
            self.first_text_awaited_since = turn.created_at
        self.gate = ToolGate(
            store=self.store,
            db=self.resources.db,
            approvals=self.resources.approvals,
            scope=self.scope,
            session_id=self.session_id,
            agent_id=self.agent.get("id"),
            is_sub_agent=self.is_sub_agent,
        )
        available = agents.tools_for_agent(
            self.agent,
            tools.for_turn(is_sub_agent=self.is_sub_agent, extra=await self.resources.mcp_tools()),
        )
        past, learned = ([], {}) if self.is_sub_agent else await self.store.history(turn)
        return TurnState.of(turn, past=past, learned=learned), available

    def _start_span(self, turn: Turn) -> None:
        """The run's ``invoke_agent`` span, from when the run began."""
        parent = self.trace_parent
        if parent is None:
            parent = tracing.context_of(turn.traceparent)
        name = self.agent.get("name", "")
        self.span = tracing.start_span(
            f"invoke_agent {name}".rstrip(),
            parent=parent,
            start_time=self.started_ns,
            attributes={
                tracing.OPERATION: "invoke_agent",
                tracing.AGENT_NAME: name,
                tracing.AGENT_ID: str(self.agent.get("id", "")),
                tracing.CONVERSATION_ID: str(turn.session_id),
                tracing.REQUEST_MODEL: agents.model_for(self.agent),
                tracing.TURN_ID: turn.pk,
            },
        )
        self.trace = tracing.inside(self.span)

    async def _call_model(self, state: TurnState, available: dict[str, tools.Tool]):
        """One streamed model call, its text checkpointed as it comes; the reply and what it
        used are recorded."""
        self.output = AssistantOutput(
            store=self.store,
            session_id=self.session_id,
            outbox=self.resources.outbox,
            checkpointer=self.resources.checkpointer,
            scope=self.scope,
        )
        specs = [tool.openai_spec() for tool in available.values()]
        sent = await self._model_input(state, specs)
        await self.spending.before_call(agents.model_for(self.agent))
        try:
            try:
                reply = await self._stream(state, sent, specs)
            except llm.ContextTooLong as refusal:
                # The model's window is smaller than the budget assumed: leave more out, once.
                state.window.refused(sent, limit=refusal.limit, prompt_tokens=refusal.prompt_tokens)
                shorter = await self._model_input(state, specs)
                if shorter.estimated_tokens >= sent.estimated_tokens:
                    raise
                sent = shorter
                reply = await self._stream(state, sent, specs)
        except (AgentStopped, llm.LLMError) as cut:
            await self.spending.cut_short(state.usage, cut, self.output.text)
            raise
        state.window.observe(sent, reply.usage.get("prompt_tokens", 0))
        state.add_reply(reply)
        await self.spending.answered(state.usage, reply)
        self.output.flush_delta()
        await self.output.persist(streaming=False)
        await self._checkpoint(state)
        if reply.tool_calls:
            self.output = None
        return reply

    async def _model_input(
        self, state: TurnState, specs: list[dict[str, Any]]
    ) -> transcript.ModelInput:
        """The model call's messages, within the context window; the first time a turn leaves
        earlier exchanges out, the timeline says so."""
        sent = state.window.fit(
            system_prompt=self.agent["instructions"],
            history=state.history,
            current=state.messages,
            tools=specs,
        )
        if sent.omitted and not state.context_trimmed:
            state.context_trimmed = True
            await self.store.record(EventKind.CONTEXT_TRIMMED, transcript.trimmed_event_data(sent))
            await self._checkpoint(state)
        return sent

    async def _stream(
        self, state: TurnState, sent: transcript.ModelInput, specs: list[dict[str, Any]]
    ) -> llm.ModelReply:
        model = agents.model_for(self.agent)
        self.spending.sending(model=model, messages=sent.messages, specs=specs)
        return await llm.stream_chat(
            self.resources.client,
            model=model,
            messages=sent.messages,
            tools=specs,
            scope=self.scope,
            on_text=self._on_text,
            on_restart=self.output.restart,
            max_output_chars=settings.AGENT_MAX_OUTPUT_CHARS - state.output_chars,
            trace_parent=self.trace,
        )

    async def _on_text(self, piece: str) -> None:
        if self.first_text_awaited_since is not None:
            waited = (timezone.now() - self.first_text_awaited_since).total_seconds()
            metrics.TIME_TO_FIRST_TOKEN.observe(waited)
            self.first_text_awaited_since = None
        await self.output.on_text(piece)
        self.spending.streamed(len(self.output.text))

    async def _handle_tool_calls(
        self, state: TurnState, calls: list[llm.ToolCall], available: dict[str, tools.Tool]
    ) -> list[dict[str, Any]]:
        """Run each call the agent may make now; return those that need a human first."""
        awaiting: list[dict[str, Any]] = []
        for call in calls:
            passage = await self.gate.admit(call, available)
            if passage.waiting is not None:
                awaiting.append(passage.waiting)
            else:
                await self._pass(state, passage)
            await self._checkpoint(state)
        return awaiting

    async def _park(self, state: TurnState, awaiting: list[dict[str, Any]]) -> str:
        self.scope.raise_if_cancelled()
        state.awaiting_approval = awaiting
        await self.gate.park(checkpoint=state.checkpoint(), calls=awaiting)
        return TurnStatus.WAITING_FOR_APPROVAL

    async def _apply_decisions(self, state: TurnState, available: dict[str, tools.Tool]) -> None:
        """Resume after approval: run approved calls once, report rejected ones to the model."""
        decisions = await self.gate.decisions()
        answered = state.answered_calls()
        for call in state.awaiting_approval:
            if call["id"] not in answered:
                decision = decisions.get(call["id"])
                await self._pass(state, await self.gate.after_decision(call, decision, available))
        state.awaiting_approval = []
        await self._checkpoint(state)

    async def _pass(self, state: TurnState, passage: Passage) -> None:
        """Run a call the gate let through, or tell the model why it did not."""
        if passage.tool is None:
            await self._tool_result(
                state,
                passage.call_id,
                passage.name,
                passage.refusal,
                ok=False,
                not_run="rejected" if passage.rejected else "refused",
            )
            return
        await self._run_tool(
            state,
            passage.tool,
            passage.call_id,
            passage.arguments,
            note=passage.note,
            approval_id=passage.approval_id,
        )

    async def _run_tool(
        self,
        state: TurnState,
        tool: tools.Tool,
        call_id: str,
        arguments: dict[str, Any],
        *,
        note: str = "",
        approval_id: int | None = None,
    ) -> None:
        """Run a call and record its result, ``note`` (what the model should know about how
        the call was made) ahead of it; ``approval_id``: the approved request it runs for."""

        async def record_progress(progress: dict[str, Any]) -> None:
            await self.store.record(
                EventKind.TOOL_PROGRESS, {"tool_call_id": call_id, "tool": tool.name, **progress}
            )

        span = tracing.start_span(
            f"execute_tool {tool.name}",
            parent=self.trace,
            attributes={
                tracing.OPERATION: "execute_tool",
                tracing.TOOL_NAME: tool.name,
                tracing.TOOL_CALL_ID: call_id,
                tracing.TOOL_TYPE: "function",
            },
        )
        inside = tracing.inside(span)
        context = tools.ToolContext(
            turn_id=self.turn_id,
            tool_call_id=call_id,
            run_sub_agent=partial(self._run_sub_agent, trace_parent=inside),
            record_progress=record_progress,
            trace=inside,
        )
        try:
            result = await self.scope.run(
                tools.run_timed(tool, arguments, context), interruptible=tool.interruptible
            )
        except tools.ToolError as exc:
            tracing.fail(span, type(exc).__name__, str(exc))
            await self._tool_result(
                state, call_id, tool.name, str(exc), ok=False, note=note, approval_id=approval_id
            )
            return
        except AgentStopped:
            raise
        except Exception as exc:
            logger.exception("turn %s: tool %s failed", self.turn_id, tool.name)
            tracing.fail(span, type(exc).__name__)
            await self._tool_result(
                state,
                call_id,
                tool.name,
                f"The tool {tool.name} failed.",
                ok=False,
                note=note,
                approval_id=approval_id,
            )
            return
        finally:
            span.end()
        # A non-interruptible tool finished although a stop arrived meanwhile: record its
        # result whatever happens next, then the next boundary stops the turn.
        await self._tool_result(
            state,
            call_id,
            tool.name,
            result,
            ok=True,
            note=note,
            force=True,
            approval_id=approval_id,
        )

    async def _run_sub_agent(self, task: str, *, trace_parent: tracing.Context) -> str:
        child = await self.store.start_child(task)
        runner = TurnRunner(
            store=child,
            scope=CancelScope(parent=self.scope),
            resources=self.resources,
            trace_parent=trace_parent,
        )
        outcome = await runner.run()
        if outcome == TurnStatus.STOPPED:
            raise AgentStopped(self.scope.reason or StopReason.USER_CANCEL)
        if outcome != TurnStatus.COMPLETED:
            raise tools.ToolError("The sub-agent failed.")
        return await child.answer() or NO_SUB_AGENT_ANSWER

    async def _tool_result(
        self,
        state: TurnState,
        call_id,
        name,
        result: str,
        *,
        ok: bool,
        note: str = "",
        not_run: str = "",
        force: bool = False,
        approval_id: int | None = None,
    ) -> None:
        """Give the model the call's result (``note``, how the call was made, ahead of it) and
        record it. The note is kept apart in the event: it is written for the model, and the
        page leaves it out. ``not_run``: why a call never ran ("rejected" by a person,
        "refused" by the rules); the page shows such a call as not run, not as failed. An
        approved call's (``approval_id``) receipt gets the hash of what the model received."""
        if not force:
            self.scope.raise_if_cancelled()
        received = note + result
        state.messages.append({"role": "tool", "tool_call_id": call_id, "content": received})
        data = {"tool_call_id": call_id, "tool": name, "ok": ok, "result": result}
        if note:
            data["note"] = note
        if not_run:
            data["not_run"] = not_run
        await self.store.record(EventKind.TOOL_RESULT, data)
        if approval_id is not None:
            await self.gate.executed(approval_id, received)

    async def _checkpoint(self, state: TurnState) -> None:
        await self.store.save_progress(checkpoint=state.checkpoint(), usage=state.usage)

    async def _settled_output(self) -> AssistantOutput | None:
        """The text of the model call under way, once nothing else writes it; its unsent text
        goes out live too, so a stopped answer's deltas add up to its kept text."""
        output = self.output
        if output:
            await output.settle()
            output.flush_delta()
        return output

    async def _hand_back(self) -> bool:
        """Drain in ``requeue`` mode: put a top-level turn back in the queue to resume from its
        checkpoint. False when the turn must end here instead (a sub-agent, ``stop`` mode, or
        a user's stop already under way)."""
        if settings.AGENT_DRAIN_MODE != "requeue" or self.is_sub_agent:
            return False
        output = await self._settled_output()
        return await self.store.requeue(
            partial_text=output.text if output else None,
            event_id=output.event_id if output else None,
        )

    async def _finalize(self, status: str, *, retry: bool = True, **ending: str) -> None:
        """Record the turn's end (``ending``: its stop reason, error code or detail).

        Until it is written the turn stays hosted here, and its heartbeat keeps its lease. A
        finalize is idempotent and fenced by the lease, so while the database is unreachable
        it is tried again: the turn ends as it did, instead of being resumed by the reaper and
        answered a second time."""
        output = await self._settled_output()
        give_up_at = time.monotonic() + FINALIZE_RETRY_FOR
        while True:
            try:
                self.ended = await self.store.finalize(
                    status,
                    partial_text=output.text if output else None,
                    event_id=output.event_id if output else None,
                    **ending,
                )
                return
            except errors.LeaseLost:
                logger.warning("turn %s: lease lost before it could be finalized", self.turn_id)
                return
            except DATABASE_UNAVAILABLE:
                if not retry or not self.resources.accepting() or time.monotonic() >= give_up_at:
                    logger.exception(
                        "turn %s: its end could not be recorded; leaving it to the reaper",
                        self.turn_id,
                    )
                    return
                logger.warning(
                    "turn %s: its end could not be recorded; trying again",
                    self.turn_id,
                    exc_info=True,
                )
                await asyncio.sleep(FINALIZE_RETRY_INTERVAL)
