"""The agent loop: one turn, in an asyncio event loop inside a worker process.

The database is the source of truth; this module only ever changes it through
``sessions_app.services``, with the lease token it took, so a stale worker writes nothing.
"""

import asyncio
import functools
import json
import logging
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.conf import settings
from django.db import connections

from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus

from .. import events, services
from ..models import ErrorCode, EventKind, StopReason, Turn, TurnStatus
from . import llm, tools
from .cancel import AgentStopped, CancelScope, current_scope

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a helpful assistant in agentproj. Use the tools you are given when they help. "
    "Some tools need a human's approval; if a call is rejected, say so and carry on."
)
DELTA_FLUSH_INTERVAL = 0.05
# Internal stop reasons: never written to a turn.
LEASE_LOST = "lease_lost"


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(turn_id: int) -> str:
    """Entry point of the django-q2 tasks: run or resume a turn, return how it ended."""
    shutdown: list[int] = []
    outcome = asyncio.run(run_turn(turn_id, shutdown_signals=shutdown))
    if signal.SIGTERM in shutdown:
        # A SIGTERM to the whole process group also ended django-q2's sentinel: nobody will
        # hand this process more work, so leave the way the signal asked.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    return outcome


async def run_turn(turn_id: int, shutdown_signals: list[int] | None = None) -> str:
    lease = await sync_to_async(services.turn_take_lease)(
        turn_id=turn_id, worker_id=worker_identity()
    )
    if lease is None:
        # Delivered twice, or already finished/stopped elsewhere: at-least-once delivery.
        return "skipped"
    scope = CancelScope()
    current_scope.set(scope)
    layer = channel_layers.make_backend("default")
    watcher = asyncio.create_task(_watch(turn_id, lease, scope, layer))
    shutdown = _ShutdownSignals(scope, received=shutdown_signals)
    try:
        async with llm.make_client() as client:
            runner = TurnRunner(
                turn_id=turn_id, lease=lease, scope=scope, client=client, layer=layer
            )
            return await runner.run()
    finally:
        shutdown.remove()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await _close_layer(layer)
        # The ORM ran on asgiref's thread-sensitive executor thread: release its connections.
        await sync_to_async(connections.close_all)()


class _ShutdownSignals:
    """Ctrl-C or SIGTERM reaching a worker process (its process group was signalled).

    django-q2 lets a worker finish its task on shutdown, but a story can stream for minutes: let
    the turn go on for ``AGENT_DRAIN_TIMEOUT``, then stop it and either hand it back to the
    queue (``requeue``: resumed from its checkpoint by another worker) or finalize it
    ``stopped`` with ``worker_drain`` (``stop``).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, scope: CancelScope, received: list[int] | None = None):
        self.scope = scope
        self.received = received if received is not None else []
        self._timer: asyncio.Task | None = None
        self._loop = asyncio.get_running_loop()
        self._previous: dict[int, Any] = {}
        for signum in self.SIGNALS:
            previous = signal.getsignal(signum)
            try:
                self._loop.add_signal_handler(signum, self._on_signal, signum)
            except (RuntimeError, ValueError, NotImplementedError):
                # Not the main thread (tests run turns in threads): nothing to install.
                continue
            self._previous[signum] = previous

    def _on_signal(self, signum: int) -> None:
        self.received.append(signum)
        if self._timer is None:
            logger.info("shutdown requested; draining for %ss", settings.AGENT_DRAIN_TIMEOUT)
            self._timer = self._loop.create_task(self._stop_after_grace())

    async def _stop_after_grace(self) -> None:
        await asyncio.sleep(settings.AGENT_DRAIN_TIMEOUT)
        self.scope.cancel(StopReason.WORKER_DRAIN)

    def remove(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for signum, previous in self._previous.items():
            self._loop.remove_signal_handler(signum)
            # django-q2 workers ignore Ctrl-C (their cluster stops them): give that back.
            signal.signal(signum, previous)


async def _close_layer(layer) -> None:
    closer = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if closer is not None:
        await closer()


class _WatchThread:
    """A thread of the watcher's own for its database calls.

    The ORM otherwise runs on asgiref's one thread-sensitive thread, which a tool doing blocking
    work can hold for minutes: the heartbeat and the stop backstop must not wait behind it.
    """

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn-watch")

    async def call(self, func, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    async def close(self) -> None:
        await self.call(connections.close_all)
        self._executor.shutdown(wait=False)


async def _watch(turn_id: int, lease, scope: CancelScope, layer) -> None:
    """Learn of a stop: a control message (fast path) or the turn row (about once a second).

    It also keeps the lease alive until the turn's runner returns — a non-interruptible tool may
    still be finishing after a stop — and if the lease is lost the turn stops without writing.
    A failed check is logged and tried again: a database hiccup must not switch Stop off.
    """
    thread = _WatchThread()
    listener = asyncio.create_task(_listen_for_control(turn_id, scope, layer, thread))
    last_beat = time.monotonic()
    try:
        while True:
            await asyncio.sleep(settings.AGENT_CANCEL_POLL_INTERVAL)
            try:
                if time.monotonic() - last_beat >= settings.AGENT_HEARTBEAT_INTERVAL:
                    status = await thread.call(
                        services.turn_heartbeat, turn_id=turn_id, lease_token=lease
                    )
                    last_beat = time.monotonic()
                elif scope.cancelled:
                    continue
                else:
                    status = await thread.call(_current_status, turn_id, lease)
                if status is None:
                    scope.cancel(LEASE_LOST)
                elif status == TurnStatus.STOPPING:
                    scope.cancel(await thread.call(_stop_reason, turn_id))
            except Exception:
                logger.warning("turn %s: checking the turn row failed", turn_id, exc_info=True)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await thread.close()


async def _listen_for_control(turn_id: int, scope: CancelScope, layer, thread) -> None:
    channel = events.turn_control_channel(turn_id)
    while not scope.cancelled:
        try:
            message = await layer.receive(channel)
            if message.get("action") == "cancel":
                scope.cancel(await thread.call(_stop_reason, turn_id))
        except Exception:
            # The row backstop still works; try the fast path again shortly.
            logger.warning("turn %s: control channel failed", turn_id, exc_info=True)
            await asyncio.sleep(settings.AGENT_CANCEL_POLL_INTERVAL)


def _current_status(turn_id: int, lease) -> str | None:
    row = Turn.objects.filter(pk=turn_id, lease_token=lease).values_list("status", flat=True)
    return row.first()


def _stop_reason(turn_id: int) -> str:
    reason = Turn.objects.values_list("stop_reason", flat=True).get(pk=turn_id)
    return reason or StopReason.USER_CANCEL


class AssistantOutput:
    """The assistant text of one model call: streamed live, checkpointed a few times a second."""

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
            await self.flush_delta()

    async def restart(self) -> None:
        self.text = ""
        self._unsent_from = 0
        if self.event_id is not None:
            await self.persist(streaming=True)

    async def flush_delta(self) -> None:
        if self.event_seq is None or self._unsent_from >= len(self.text):
            return
        payload: events.DeltaPayload = {
            "seq": self.event_seq,
            "turn": self.runner.turn_id,
            "offset": self._unsent_from,
            "text": self.text[self._unsent_from :],
        }
        self._unsent_from = len(self.text)
        self._last_flush = time.monotonic()
        try:
            await events.send_delta(
                self.runner.layer, session_id=self.runner.session_id, payload=payload
            )
        except Exception:
            logger.warning("live delta for turn %s not sent", self.runner.turn_id, exc_info=True)

    async def persist(self, *, streaming: bool) -> None:
        self.runner.scope.raise_if_cancelled()
        if not self.text and self.event_id is None:
            return
        event = await sync_to_async(services.turn_save_progress)(
            turn_id=self.runner.turn_id,
            lease_token=self.runner.lease,
            assistant_event_id=self.event_id,
            assistant_text=self.text,
            streaming=streaming,
        )
        self.event_id, self.event_seq = event.pk, event.seq
        self._last_persist = time.monotonic()
        self._unsent_from = len(self.text)
        self._last_flush = self._last_persist


class TurnRunner:
    def __init__(
        self, *, turn_id: int, lease, scope: CancelScope, client: httpx.AsyncClient, layer
    ):
        self.turn_id = turn_id
        self.lease = lease
        self.scope = scope
        self.client = client
        self.layer = layer
        self.session_id = None
        self.is_sub_agent = False
        self.output: AssistantOutput | None = None

    async def run(self) -> str:
        try:
            outcome = await self._run()
        except AgentStopped as stop:
            if stop.reason == LEASE_LOST:
                logger.warning("turn %s: lease lost; leaving it to its new owner", self.turn_id)
                return LEASE_LOST
            if stop.reason == StopReason.WORKER_DRAIN and await self._hand_back():
                return "requeued"
            await self._finalize(
                TurnStatus.STOPPED, stop_reason=stop.reason or StopReason.USER_CANCEL
            )
            return TurnStatus.STOPPED
        except asyncio.CancelledError:
            # A parent cancelling this sub-agent's task: record the stop, then let it unwind.
            if self.scope.cancelled:
                await self._finalize(TurnStatus.STOPPED, stop_reason=StopReason.PARENT_STOPPED)
            raise
        except llm.LLMError as exc:
            logger.warning("turn %s: model failed: %s", self.turn_id, exc.user_message)
            await self._finalize(
                TurnStatus.FAILED, error_code=ErrorCode.LLM_ERROR, detail=exc.user_message
            )
            return TurnStatus.FAILED
        except services.LeaseLost:
            logger.warning("turn %s: lease lost; leaving it to its new owner", self.turn_id)
            return LEASE_LOST
        except Exception:
            logger.exception("turn %s failed", self.turn_id)
            await self._finalize(TurnStatus.FAILED, error_code=ErrorCode.INTERNAL_ERROR)
            return TurnStatus.FAILED
        return outcome

    async def _hand_back(self) -> bool:
        """Drain in ``requeue`` mode: put a top-level turn back in the queue to resume from its
        checkpoint. False when the turn must end here instead (a sub-agent, ``stop`` mode, or
        a user's stop already under way)."""
        if settings.AGENT_DRAIN_MODE != "requeue" or self.is_sub_agent:
            return False
        output = self.output
        return await sync_to_async(services.turn_requeue)(
            turn_id=self.turn_id,
            lease_token=self.lease,
            partial_text=output.text if output else None,
            assistant_event_id=output.event_id if output else None,
        )

    async def _finalize(
        self, status: str, *, stop_reason: str = "", error_code: str = "", detail: str = ""
    ) -> None:
        output = self.output
        try:
            await sync_to_async(services.turn_finalize)(
                turn_id=self.turn_id,
                status=status,
                lease_token=self.lease,
                stop_reason=stop_reason,
                error_code=error_code,
                error_detail=detail,
                partial_text=output.text if output else None,
                assistant_event_id=output.event_id if output else None,
            )
        except services.LeaseLost:
            logger.warning("turn %s: lease lost before it could be finalized", self.turn_id)

    async def _run(self) -> str:
        turn = await sync_to_async(Turn.objects.select_related("session").get)(pk=self.turn_id)
        self.session_id = turn.session_id
        self.is_sub_agent = turn.parent_id is not None
        available = tools.for_turn(is_sub_agent=self.is_sub_agent)
        state = turn.checkpoint or {}
        if not state.get("messages"):
            state = {"messages": await _initial_messages(turn), "model_calls": 0}
        messages: list[dict[str, Any]] = state["messages"]
        _answer_dangling_calls(messages, exclude=state.get("awaiting_approval", []))
        usage = dict(turn.usage or {})

        if state.get("awaiting_approval"):
            await self._apply_decisions(state, messages, available)

        while True:
            self.scope.raise_if_cancelled()
            if state["model_calls"] >= settings.AGENT_MAX_MODEL_CALLS:
                await self._finalize(TurnStatus.FAILED, error_code=ErrorCode.MODEL_CALL_LIMIT)
                return TurnStatus.FAILED
            self.output = AssistantOutput(self)
            reply = await llm.stream_chat(
                self.client,
                messages=messages,
                tools=[tool.openai_spec() for tool in available.values()],
                scope=self.scope,
                on_text=self.output.on_text,
                on_restart=self.output.restart,
            )
            state["model_calls"] += 1
            for key, value in reply.usage.items():
                usage[key] = usage.get(key, 0) + value
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
            messages.append(assistant)
            await self.output.flush_delta()
            await self.output.persist(streaming=False)
            await self._checkpoint(state, usage)
            if not reply.tool_calls:
                await self._finalize(TurnStatus.COMPLETED)
                return TurnStatus.COMPLETED
            self.output = None

            awaiting: list[dict[str, Any]] = []
            for call in reply.tool_calls:
                arguments, problem = _parse_arguments(call.arguments_json)
                await self._record(
                    EventKind.TOOL_CALL,
                    {"tool_call_id": call.id, "tool": call.name, "arguments": arguments},
                )
                tool = available.get(call.name)
                if problem is None and tool is None:
                    problem = f"Unknown tool: {call.name}"
                if problem is None:
                    try:
                        tool.validate(arguments)
                    except tools.ToolError as exc:
                        problem = str(exc)
                if problem is not None:
                    await self._tool_result(messages, call.id, call.name, problem, ok=False)
                elif tool.needs_approval:
                    awaiting.append({"id": call.id, "name": call.name, "arguments": arguments})
                else:
                    await self._run_tool(messages, tool, call.id, arguments)
                await self._checkpoint(state, usage)

            if awaiting:
                self.scope.raise_if_cancelled()
                state["awaiting_approval"] = awaiting
                parked = await sync_to_async(services.turn_park_for_approval)(
                    turn_id=self.turn_id, lease_token=self.lease, checkpoint=state, calls=awaiting
                )
                if not parked:
                    raise AgentStopped(await sync_to_async(_stop_reason)(self.turn_id))
                return TurnStatus.WAITING_FOR_APPROVAL

    async def _apply_decisions(
        self,
        state: dict[str, Any],
        messages: list[dict[str, Any]],
        available: dict[str, tools.Tool],
    ) -> None:
        """Resume after approval: run approved calls once, report rejected ones to the model."""
        awaiting = state["awaiting_approval"]
        decided = await sync_to_async(
            lambda: {
                a.tool_call_id: a
                for a in ApprovalRequest.objects.filter(turn_id=self.turn_id).select_related(
                    "decided_by"
                )
            }
        )()
        answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
        for call in awaiting:
            if call["id"] in answered:
                continue
            approval = decided.get(call["id"])
            if approval is None or approval.status != ApprovalStatus.APPROVED:
                who = (
                    approval.decided_by.get_username()
                    if approval and approval.decided_by
                    else "the approver"
                )
                reason = approval.reason if approval and approval.reason else "no reason given"
                await self._tool_result(
                    messages, call["id"], call["name"], f"Rejected by {who}: {reason}", ok=False
                )
                continue
            # Claiming marks the call executed: only claim when it is about to run.
            self.scope.raise_if_cancelled()
            try:
                claimed = await sync_to_async(approval_services.approval_claim_execution)(
                    approval_id=approval.pk, arguments=call["arguments"]
                )
            except approval_services.ArgumentsChanged:
                await self._tool_result(
                    messages,
                    call["id"],
                    call["name"],
                    "Refused: the arguments differ from the ones that were approved.",
                    ok=False,
                )
                continue
            if not claimed:
                await self._tool_result(
                    messages,
                    call["id"],
                    call["name"],
                    "This approved call was already run once; it is not run again.",
                    ok=False,
                )
                continue
            await self._run_tool(messages, available[call["name"]], call["id"], call["arguments"])
        state.pop("awaiting_approval")
        await self._checkpoint(state, None)

    async def _run_tool(
        self, messages, tool: tools.Tool, call_id: str, arguments: dict[str, Any]
    ) -> None:
        context = tools.ToolContext(
            turn_id=self.turn_id, tool_call_id=call_id, run_sub_agent=self._run_sub_agent
        )
        try:
            result = await self.scope.run(
                tool.run(arguments, context), interruptible=tool.interruptible
            )
        except tools.ToolError as exc:
            await self._tool_result(messages, call_id, tool.name, str(exc), ok=False)
            return
        except AgentStopped:
            raise
        except Exception:
            logger.exception("turn %s: tool %s failed", self.turn_id, tool.name)
            await self._tool_result(
                messages, call_id, tool.name, f"The tool {tool.name} failed.", ok=False
            )
            return
        # A non-interruptible tool finished although a stop arrived meanwhile: record its
        # result whatever happens next, then the next boundary stops the turn.
        await self._tool_result(messages, call_id, tool.name, result, ok=True, force=True)

    async def _run_sub_agent(self, task: str) -> str:
        child = await sync_to_async(services.child_turn_start)(
            parent_id=self.turn_id, lease_token=self.lease, task=task
        )
        scope = CancelScope(parent=self.scope)
        runner = TurnRunner(
            turn_id=child.pk, lease=self.lease, scope=scope, client=self.client, layer=self.layer
        )

        async def in_child_context() -> str:
            current_scope.set(scope)
            return await runner.run()

        outcome = await asyncio.create_task(in_child_context())
        if outcome == TurnStatus.STOPPED:
            raise AgentStopped(self.scope.reason or StopReason.USER_CANCEL)
        if outcome != TurnStatus.COMPLETED:
            raise tools.ToolError("The sub-agent failed.")
        return await sync_to_async(_final_text)(child.pk)

    async def _record(self, kind: str, data: dict[str, Any]) -> None:
        await sync_to_async(services.turn_record_event)(
            turn_id=self.turn_id, lease_token=self.lease, kind=kind, data=data
        )

    async def _tool_result(
        self, messages, call_id, name, content: str, *, ok: bool, force: bool = False
    ) -> None:
        if not force:
            self.scope.raise_if_cancelled()
        messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        await self._record(
            EventKind.TOOL_RESULT,
            {"tool_call_id": call_id, "tool": name, "ok": ok, "result": content},
        )

    async def _checkpoint(self, state: dict[str, Any], usage: dict[str, int] | None) -> None:
        await sync_to_async(services.turn_save_progress)(
            turn_id=self.turn_id, lease_token=self.lease, checkpoint=state, usage=usage
        )


def _parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
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
                        "content": "The worker running this call was lost; its outcome is unknown.",
                    }
                )


def _final_text(turn_id: int) -> str:
    texts = [
        e.data.get("text", "")
        for e in Turn.objects.get(pk=turn_id).events.filter(kind=EventKind.ASSISTANT_MESSAGE)
    ]
    return "\n".join(t for t in texts if t) or "(the sub-agent gave no answer)"


@sync_to_async
def _initial_messages(turn: Turn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    if turn.parent_id is None:
        earlier = turn.session.turns.filter(
            parent__isnull=True,
            index__lt=turn.index,
            status__in=(TurnStatus.COMPLETED, TurnStatus.STOPPED, TurnStatus.FAILED),
        ).order_by("index")
        for previous in earlier:
            messages.append({"role": "user", "content": previous.user_message})
            answer = (
                _final_text(previous.pk)
                if previous.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists()
                else ""
            )
            if answer:
                messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": turn.user_message})
    return messages
