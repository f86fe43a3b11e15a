"""The gate every tool call of a turn passes before it may run.

A call the model makes: its arguments parsed and prepared (``Tool.prepare``), the policy's
verdict, a session grant that stands in for a person; it is recorded in the timeline with the
rule that decided it, and then runs, is refused (the model is told why) or waits for people
(the turn parks). After the people decided: a rejection is told to the model, and an approved
call is claimed just before it runs, so that it runs exactly once. Approvals are reached through
``approvals_app.gate`` only.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from agentproj import json_limits
from agentproj.vocabulary import EventKind
from approvals_app.gate import ApprovalGate, CallDecision, Verdict
from sessions_app.runtime import llm, tools
from sessions_app.runtime.cancel import AgentStopped, CancelScope
from sessions_app.runtime.db import DatabaseThreads
from sessions_app.runtime.store import TurnStore


@dataclass(frozen=True)
class Passage:
    """What the gate lets happen to one call: run ``tool`` with ``arguments`` (``note`` told to
    the model ahead of its result), tell the model ``refusal``, or wait for people (``waiting``,
    the call as its approval request needs it). ``rejected``: the refusal is a person's
    rejection, which the timeline already shows with its reason."""

    call_id: str
    name: str
    tool: tools.Tool | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    refusal: str = ""
    waiting: dict[str, Any] | None = None
    rejected: bool = False
    # The approval request whose claim let the call run: its result completes the receipt.
    approval_id: int | None = None


class ToolGate:
    """The gate of one turn."""

    def __init__(
        self,
        *,
        store: TurnStore,
        db: DatabaseThreads,
        approvals: ApprovalGate,
        scope: CancelScope,
        session_id,
        agent_id: int | None,
        is_sub_agent: bool,
    ):
        self._store = store
        self._db = db
        self._approvals = approvals
        self._scope = scope
        self._session_id = session_id
        self._agent_id = agent_id
        self._is_sub_agent = is_sub_agent

    async def admit(self, call: llm.ToolCall, available: dict[str, tools.Tool]) -> Passage:
        """The way of a call the model just made; its tool_call event is recorded here."""
        tool, arguments, problem = _prepared(call, available)
        # Refused arguments are not recorded: they may hold what neither the database (a NUL)
        # nor a reader (a bidi override) may be given. The refusal says what was wrong.
        recorded = {"tool_call_id": call.id, "tool": call.name, "arguments": {}}
        verdict = None
        if problem is None:
            recorded["arguments"] = arguments
            verdict = await self._db(
                self._approvals.verdict,
                tool_name=tool.name,
                needs_approval=tool.needs_approval,
                arguments=arguments,
                agent_id=self._agent_id,
            )
            recorded["policy"] = verdict.as_event_data()
        await self._store.record(EventKind.TOOL_CALL, recorded)
        if verdict is not None:
            problem = _policy_refusal(verdict, is_sub_agent=self._is_sub_agent)
        if problem is not None:
            return Passage(call.id, call.name, refusal=problem)
        if not verdict.requires_approval:
            return Passage(call.id, call.name, tool=tool, arguments=arguments)
        return await self._granted_or_waiting(call, tool, arguments, verdict)

    async def _granted_or_waiting(
        self, call: llm.ToolCall, tool: tools.Tool, arguments: dict[str, Any], verdict: Verdict
    ) -> Passage:
        granted = await self._db(
            self._approvals.grant,
            session_id=self._session_id,
            tool_name=tool.name,
            arguments=arguments,
            verdict=verdict,
        )
        if granted is None:
            waiting = {
                "id": call.id,
                "name": call.name,
                "arguments": arguments,
                **verdict.approval_needs(),
            }
            return Passage(call.id, call.name, waiting=waiting)
        await self._store.record(
            EventKind.APPROVAL_DECIDED, granted.as_event_data(tool_call_id=call.id, tool=call.name)
        )
        return Passage(call.id, call.name, tool=tool, arguments=arguments)

    async def park(self, *, checkpoint: dict[str, Any], calls: list[dict[str, Any]]) -> None:
        """Wait for approval of ``calls`` without holding anything: the checkpoint keeps them.
        ``AgentStopped`` when a stop came first."""
        if not await self._store.park(checkpoint=checkpoint, calls=calls):
            raise AgentStopped(await self._store.stop_reason())

    async def decisions(self) -> dict[str, CallDecision]:
        """How the people decided the calls the turn parked for, by call id."""
        return await self._db(self._approvals.decisions, self._store.turn_id)

    async def after_decision(
        self,
        call: dict[str, Any],
        decision: CallDecision | None,
        available: dict[str, tools.Tool],
    ) -> Passage:
        """The way of a parked call once its turn resumed; an approved one is claimed here, so
        run it right away."""
        call_id, name = call["id"], call["name"]
        if decision is None or not decision.approved:
            return Passage(call_id, name, refusal=_rejection(decision), rejected=True)
        tool = available.get(name)
        if tool is None:
            # Its MCP server was removed or disabled while the call waited.
            refusal = f"The tool {name} is not available any more; it did not run."
            return Passage(call_id, name, refusal=refusal)
        self._scope.raise_if_cancelled()
        claim = await self._db(
            self._approvals.claim, approval_id=decision.approval_id, requested=call["arguments"]
        )
        if claim.arguments_changed:
            refusal = "Refused: the arguments differ from the ones that were approved."
            return Passage(call_id, name, refusal=refusal)
        if claim.arguments is None:
            refusal = "This approved call was already run once; it is not run again."
            return Passage(call_id, name, refusal=refusal)
        return Passage(
            call_id,
            name,
            tool=tool,
            arguments=claim.arguments,
            note=_edit_note(decision),
            approval_id=decision.approval_id,
        )

    async def executed(self, approval_id: int, result_text: str) -> None:
        """An approved call ran and the model was given ``result_text`` (its receipt)."""
        await self._db(self._approvals.executed, approval_id=approval_id, result_text=result_text)


def _prepared(
    call: llm.ToolCall, available: dict[str, tools.Tool]
) -> tuple[tools.Tool | None, dict[str, Any], str | None]:
    """The call's tool and its arguments in canonical form, or what the model is told."""
    arguments, problem = _parse_arguments(call.arguments_json)
    tool = available.get(call.name)
    if problem is None and tool is None:
        problem = f"Unknown tool: {call.name}"
    if problem is None:
        try:
            arguments = tool.prepare(arguments)
        except tools.ToolError as exc:
            problem = str(exc)
    return tool, arguments, problem


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


def _policy_refusal(verdict: Verdict, *, is_sub_agent: bool) -> str | None:
    """What the model is told when a policy keeps a call from running, else None."""
    if verdict.denies:
        return f'Refused by the policy rule "{verdict.rule_name}": not allowed.'
    if verdict.requires_approval and is_sub_agent:
        # A sub-agent runs inside its parent's task and cannot park for a person.
        return (
            f'Refused: the policy rule "{verdict.rule_name}" requires a person\'s approval, '
            "which a sub-agent cannot wait for."
        )
    return None


def _edit_note(decision: CallDecision) -> str:
    if decision.edited_arguments is None:
        return ""
    who = decision.edited_by or "an approver"
    edited = json.dumps(decision.edited_arguments, sort_keys=True, ensure_ascii=False)
    return (
        f"Note: a person ({who}) changed the arguments of this call before approving it; "
        f"it ran with {edited}.\n"
    )


def _rejection(decision: CallDecision | None) -> str:
    who = decision.decided_by if decision else None
    reason = decision.reason if decision and decision.reason else "no reason given"
    if who is None and decision is not None and decision.reason:
        # Nobody could approve it (the reason names the rule), or the approver's account is gone.
        return f"Rejected: {reason}"
    return f"Rejected by {who or 'the approver'}: {reason}"
