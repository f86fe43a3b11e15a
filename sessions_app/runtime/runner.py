"""One turn of the agent: call the model, run or park its tool calls, until it answers.

The database is the source of truth; a runner only ever changes it through
``sessions_app.services``, with the lease token its host took, so a stale runner writes nothing.
It runs inside a ``TurnHost`` and uses the host's shared resources: its database threads, its
HTTP client and its channel layer.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import InterfaceError, OperationalError

from agentproj import json_limits
from agentproj.vocabulary import ErrorCode, EventKind, StopReason, TurnStatus
from approvals_app import errors as approval_errors
from approvals_app import policies
from approvals_app import records as approval_records
from approvals_app import selectors as approval_selectors
from approvals_app.models import ApprovalStatus, Outcome
from sessions_app.core import agents, errors, leases, lifecycle, selectors
from sessions_app.runtime import history, llm, tools, transcript
from sessions_app.runtime.cancel import LEASE_LOST, AgentStopped, CancelScope, current_scope
from sessions_app.runtime.output import AssistantOutput

if TYPE_CHECKING:
    from sessions_app.runtime.host import TurnHost

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


@dataclass
class TurnState:
    """What a turn checkpoints: its own conversation so far (its user message, then the model's
    replies and the tool results) and its progress. The earlier turns (``history``) are not
    part of it: each run of the turn reads them from the timeline."""

    messages: list[dict[str, Any]]
    window: transcript.ContextWindow
    model_calls: int = 0
    output_chars: int = 0
    awaiting_approval: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    history: list[list[dict[str, Any]]] = field(default_factory=list)
    context_trimmed: bool = False

    def checkpoint(self) -> dict[str, Any]:
        saved: dict[str, Any] = {
            "messages": self.messages,
            "model_calls": self.model_calls,
            "output_chars": self.output_chars,
        }
        if self.awaiting_approval:
            saved["awaiting_approval"] = self.awaiting_approval
        if learned := self.window.learned():
            saved["context"] = learned
        if self.context_trimmed:
            saved["context_trimmed"] = True
        return saved


class TurnRunner:
    def __init__(self, *, turn_id: int, lease, scope: CancelScope, host: "TurnHost"):
        self.turn_id = turn_id
        self.lease = lease
        self.scope = scope
        self.host = host
        self.session_id = None
        self.is_sub_agent = False
        # The turn's snapshot of its agent profile (``agents.agent_snapshot``).
        self.agent: dict[str, Any] = {}
        self.output: AssistantOutput | None = None

    async def run(self) -> str:
        """Run the turn to wherever it ends here; returns how it ended."""
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
        """The turn's checkpoint, or a fresh conversation; and the tools it may use: those of
        its kind of turn that its agent profile allows."""
        turn = await self.host.db(selectors.turn_to_run, self.turn_id)
        self.session_id = turn.session_id
        self.is_sub_agent = turn.parent_id is not None
        self.agent = turn.agent_snapshot
        available = agents.tools_for_agent(
            self.agent,
            tools.for_turn(
                is_sub_agent=self.is_sub_agent, extra=await self.host.mcp.tools_for_turn()
            ),
        )
        saved = turn.checkpoint or {}
        context_tokens, answer_reserve = agents.context_window_for(self.agent)
        past, learned = (
            ([], {}) if self.is_sub_agent else await self.host.db(history.turn_history, turn)
        )
        state = TurnState(
            messages=transcript.own_messages(saved.get("messages") or [])
            or [{"role": "user", "content": turn.user_message}],
            window=transcript.ContextWindow.restore(
                context_tokens=context_tokens,
                answer_reserve=answer_reserve,
                learned=saved.get("context") or learned,
            ),
            model_calls=saved.get("model_calls", 0),
            output_chars=saved.get("output_chars", 0),
            awaiting_approval=saved.get("awaiting_approval", []),
            usage=dict(turn.usage or {}),
            history=[transcript.exchange(earlier) for earlier in past],
            context_trimmed=saved.get("context_trimmed", False),
        )
        _answer_dangling_calls(state.messages, exclude=state.awaiting_approval)
        return state, available

    async def _call_model(self, state: TurnState, available: dict[str, tools.Tool]):
        """One streamed model call, its text checkpointed as it comes; the reply is recorded."""
        self.output = AssistantOutput(self)
        specs = [tool.openai_spec() for tool in available.values()]
        sent = await self._model_input(state, specs)
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
        state.window.observe(sent, reply.usage.get("prompt_tokens", 0))
        state.model_calls += 1
        state.output_chars += reply.output_chars
        for key, value in reply.usage.items():
            state.usage[key] = state.usage.get(key, 0) + value
        assistant: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            assistant["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in reply.tool_calls
            ]
        state.messages.append(assistant)
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
            await self._record(EventKind.CONTEXT_TRIMMED, transcript.trimmed_event_data(sent))
            await self._checkpoint(state)
        return sent

    async def _stream(
        self, state: TurnState, sent: transcript.ModelInput, specs: list[dict[str, Any]]
    ) -> llm.ModelReply:
        return await llm.stream_chat(
            self.host.client,
            model=agents.model_for(self.agent),
            messages=sent.messages,
            tools=specs,
            scope=self.scope,
            on_text=self.output.on_text,
            on_restart=self.output.restart,
            max_output_chars=settings.AGENT_MAX_OUTPUT_CHARS - state.output_chars,
        )

    async def _handle_tool_calls(
        self, state: TurnState, calls: list[llm.ToolCall], available: dict[str, tools.Tool]
    ) -> list[dict[str, Any]]:
        """Run each call the agent may make now; return those that need a human first."""
        awaiting: list[dict[str, Any]] = []
        for call in calls:
            arguments, problem = _parse_arguments(call.arguments_json)
            tool = available.get(call.name)
            if problem is None and tool is None:
                problem = f"Unknown tool: {call.name}"
            if problem is None:
                try:
                    arguments = tool.prepare(arguments)
                except tools.ToolError as exc:
                    problem = str(exc)
            # Refused arguments are not recorded: they may hold what neither the database (a
            # NUL) nor a reader (a bidi override) may be given. The refusal says what was wrong.
            recorded = {
                "tool_call_id": call.id,
                "tool": call.name,
                "arguments": arguments if problem is None else {},
            }
            verdict = None
            if problem is None:
                verdict = await self.host.db(
                    policies.policy_verdict,
                    tool_name=tool.name,
                    needs_approval=tool.needs_approval,
                    arguments=arguments,
                    agent_id=self.agent.get("id"),
                )
                recorded["policy"] = verdict.as_event_data()
            await self._record(EventKind.TOOL_CALL, recorded)
            if verdict is not None:
                problem = _policy_refusal(verdict, is_sub_agent=self.is_sub_agent)
            if problem is not None:
                await self._tool_result(state, call.id, call.name, problem, ok=False)
            elif verdict.outcome == Outcome.REQUIRE_APPROVAL:
                granted = await self.host.db(
                    policies.session_grant_for,
                    session_id=self.session_id,
                    tool_name=tool.name,
                    arguments=arguments,
                    verdict=verdict,
                )
                if granted is None:
                    awaiting.append(
                        {
                            "id": call.id,
                            "name": call.name,
                            "arguments": arguments,
                            **verdict.approval_needs(),
                        }
                    )
                else:
                    await self._record(
                        EventKind.APPROVAL_DECIDED,
                        granted.as_event_data(tool_call_id=call.id, tool=call.name),
                    )
                    await self._run_tool(state, tool, call.id, arguments)
            else:
                await self._run_tool(state, tool, call.id, arguments)
            await self._checkpoint(state)
        return awaiting

    async def _park(self, state: TurnState, awaiting: list[dict[str, Any]]) -> str:
        """Wait for approval without holding anything: the checkpoint keeps the calls."""
        self.scope.raise_if_cancelled()
        state.awaiting_approval = awaiting
        parked = await self.host.db(
            lifecycle.turn_park_for_approval,
            turn_id=self.turn_id,
            lease_token=self.lease,
            checkpoint=state.checkpoint(),
            calls=awaiting,
        )
        if not parked:
            raise AgentStopped(await self.host.db(selectors.turn_stop_reason, self.turn_id))
        return TurnStatus.WAITING_FOR_APPROVAL

    async def _apply_decisions(self, state: TurnState, available: dict[str, tools.Tool]) -> None:
        """Resume after approval: run approved calls once, report rejected ones to the model."""
        decided = await self.host.db(approval_selectors.turn_approvals_by_call, self.turn_id)
        answered = {m.get("tool_call_id") for m in state.messages if m.get("role") == "tool"}
        for call in state.awaiting_approval:
            if call["id"] in answered:
                continue
            approval = decided.get(call["id"])
            if approval is None or approval.status != ApprovalStatus.APPROVED:
                await self._tool_result(
                    state, call["id"], call["name"], _rejection(approval), ok=False
                )
                continue
            tool = available.get(call["name"])
            if tool is None:
                # Its MCP server was removed or disabled while the call waited.
                refusal = f"The tool {call['name']} is not available any more; it did not run."
                await self._tool_result(state, call["id"], call["name"], refusal, ok=False)
                continue
            arguments, refusal = await self._claim(approval, call)
            if refusal:
                await self._tool_result(state, call["id"], call["name"], refusal, ok=False)
                continue
            await self._run_tool(state, tool, call["id"], arguments, note=_edit_note(approval))
        state.awaiting_approval = []
        await self._checkpoint(state)

    async def _claim(self, approval, call: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Mark an approved call executed just before it runs: the arguments to run it with, or
        a refusal text if it may not run."""
        self.scope.raise_if_cancelled()
        try:
            arguments = await self.host.db(
                approval_records.execution_claim,
                approval_id=approval.pk,
                requested=call["arguments"],
            )
        except approval_errors.ArgumentsChanged:
            return {}, "Refused: the arguments differ from the ones that were approved."
        if arguments is None:
            return {}, "This approved call was already run once; it is not run again."
        return arguments, ""

    async def _run_tool(
        self,
        state: TurnState,
        tool: tools.Tool,
        call_id: str,
        arguments: dict[str, Any],
        *,
        note: str = "",
    ) -> None:
        """Run a call and record its result, ``note`` (what the model should know about how
        the call was made) ahead of it."""

        async def record_progress(progress: dict[str, Any]) -> None:
            await self._record(
                EventKind.TOOL_PROGRESS, {"tool_call_id": call_id, "tool": tool.name, **progress}
            )

        context = tools.ToolContext(
            turn_id=self.turn_id,
            tool_call_id=call_id,
            run_sub_agent=self._run_sub_agent,
            record_progress=record_progress,
        )
        try:
            result = await self.scope.run(
                tool.run(arguments, context), interruptible=tool.interruptible
            )
        except tools.ToolError as exc:
            await self._tool_result(state, call_id, tool.name, note + str(exc), ok=False)
            return
        except AgentStopped:
            raise
        except Exception:
            logger.exception("turn %s: tool %s failed", self.turn_id, tool.name)
            await self._tool_result(
                state, call_id, tool.name, f"{note}The tool {tool.name} failed.", ok=False
            )
            return
        # A non-interruptible tool finished although a stop arrived meanwhile: record its
        # result whatever happens next, then the next boundary stops the turn.
        await self._tool_result(state, call_id, tool.name, note + result, ok=True, force=True)

    async def _run_sub_agent(self, task: str) -> str:
        child = await self.host.db(
            lifecycle.child_turn_start, parent_id=self.turn_id, lease_token=self.lease, task=task
        )
        scope = CancelScope(parent=self.scope)
        runner = TurnRunner(turn_id=child.pk, lease=self.lease, scope=scope, host=self.host)

        async def in_child_context() -> str:
            current_scope.set(scope)
            return await runner.run()

        outcome = await asyncio.create_task(in_child_context())
        if outcome == TurnStatus.STOPPED:
            raise AgentStopped(self.scope.reason or StopReason.USER_CANCEL)
        if outcome != TurnStatus.COMPLETED:
            raise tools.ToolError("The sub-agent failed.")
        return await self.host.db(selectors.turn_answer, child.pk) or NO_SUB_AGENT_ANSWER

    async def _record(self, kind: str, data: dict[str, Any]) -> None:
        await self.host.db(
            leases.turn_record_event,
            turn_id=self.turn_id,
            lease_token=self.lease,
            kind=kind,
            data=data,
        )

    async def _tool_result(
        self, state: TurnState, call_id, name, content: str, *, ok: bool, force: bool = False
    ) -> None:
        if not force:
            self.scope.raise_if_cancelled()
        state.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        await self._record(
            EventKind.TOOL_RESULT,
            {"tool_call_id": call_id, "tool": name, "ok": ok, "result": content},
        )

    async def _checkpoint(self, state: TurnState) -> None:
        await self.host.db(
            leases.turn_save_progress,
            turn_id=self.turn_id,
            lease_token=self.lease,
            checkpoint=state.checkpoint(),
            usage=state.usage,
        )

    async def _hand_back(self) -> bool:
        """Drain in ``requeue`` mode: put a top-level turn back in the queue to resume from its
        checkpoint. False when the turn must end here instead (a sub-agent, ``stop`` mode, or
        a user's stop already under way)."""
        if settings.AGENT_DRAIN_MODE != "requeue" or self.is_sub_agent:
            return False
        output = self.output
        if output:
            await output.settle()
            output.flush_delta()
        return await self.host.db(
            leases.turn_requeue,
            turn_id=self.turn_id,
            lease_token=self.lease,
            partial_text=output.text if output else None,
            assistant_event_id=output.event_id if output else None,
        )

    async def _finalize(
        self,
        status: str,
        *,
        stop_reason: str = "",
        error_code: str = "",
        detail: str = "",
        retry: bool = True,
    ) -> None:
        output = self.output
        if output:
            await output.settle()
            # The text since the last delta goes out live too, so a stopped answer's deltas add
            # up to its kept text.
            output.flush_delta()
        # Until the turn's end is written it stays hosted here, and its heartbeat keeps its
        # lease. A finalize is idempotent and fenced by the lease, so while the database is
        # unreachable it is tried again: the turn ends as it did, instead of being resumed by
        # the reaper and answered a second time.
        give_up_at = time.monotonic() + FINALIZE_RETRY_FOR
        while True:
            try:
                await self.host.db(
                    lifecycle.turn_finalize,
                    turn_id=self.turn_id,
                    status=status,
                    lease_token=self.lease,
                    stop_reason=stop_reason,
                    error_code=error_code,
                    error_detail=detail,
                    partial_text=output.text if output else None,
                    assistant_event_id=output.event_id if output else None,
                )
                return
            except errors.LeaseLost:
                logger.warning("turn %s: lease lost before it could be finalized", self.turn_id)
                return
            except DATABASE_UNAVAILABLE:
                if not retry or not self.host.accepting or time.monotonic() >= give_up_at:
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


def _policy_refusal(verdict: policies.Verdict, *, is_sub_agent: bool) -> str | None:
    """What the model is told when a policy keeps a call from running, else None."""
    if verdict.outcome == Outcome.DENY:
        return f'Refused by the policy rule "{verdict.rule_name}": not allowed.'
    if verdict.outcome == Outcome.REQUIRE_APPROVAL and is_sub_agent:
        # A sub-agent runs inside its parent's task and cannot park for a person.
        return (
            f'Refused: the policy rule "{verdict.rule_name}" requires a person\'s approval, '
            "which a sub-agent cannot wait for."
        )
    return None


def _edit_note(approval) -> str:
    if approval.edited_arguments is None:
        return ""
    who = approval.edited_by.get_username() if approval.edited_by else "an approver"
    edited = json.dumps(approval.edited_arguments, sort_keys=True, ensure_ascii=False)
    return (
        f"Note: a person ({who}) changed the arguments of this call before approving it; "
        f"it ran with {edited}.\n"
    )


def _rejection(approval) -> str:
    who = approval.decided_by.get_username() if approval and approval.decided_by else None
    reason = approval.reason if approval and approval.reason else "no reason given"
    return f"Rejected by {who or 'the approver'}: {reason}"


def _parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    """The model's arguments, or what the model is told about them (``json_limits``: a deep
    nesting, ``1e999`` or ``NaN`` is the model's mistake, not the turn's failure)."""
    try:
        value = json_limits.loads(raw or "{}")
    except json_limits.InvalidJson as exc:
        if exc.detail in (json_limits.TOO_DEEP, json_limits.NOT_FINITE):
            return {}, f"The tool arguments are not accepted: {exc.detail}"
        return {}, "The tool arguments are not valid JSON."
    if not isinstance(value, dict):
        return {}, "The tool arguments must be a JSON object."
    return value, None


def _answer_dangling_calls(
    messages: list[dict[str, Any]], *, exclude: list[dict[str, Any]]
) -> None:
    """After a lost worker, a checkpoint may hold tool calls without results; the model must get
    an answer for each, and a call whose outcome is unknown is not run again."""
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    answered.update(call["id"] for call in exclude)
    for message in list(messages):
        for call in message.get("tool_calls") or []:
            if call["id"] not in answered:
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": transcript.LOST_CALL_RESULT,
                    }
                )
