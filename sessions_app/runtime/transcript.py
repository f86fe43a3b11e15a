"""The model's view of a session: the messages each model call of a turn sends.

Built from the database, so that a fresh turn, one resumed after an approval and one requeued
after a drain see the same history: each earlier turn comes from its timeline events (what the
user saw happen, told in the model API's shapes), the running turn from its checkpoint (what its
own model calls and tools produced so far). The history is kept within the model's context
window by leaving out the oldest whole exchanges.

No database and no model here, only plain data: ``sessions_app.runtime.history.turn_history`` reads
what it takes.
"""

import json
import math
from dataclasses import dataclass, field
from typing import Any

from agentproj.vocabulary import EventKind, StopReason, TurnStatus

Message = dict[str, Any]

# The timeline events an earlier turn's part of the transcript is built from.
TRANSCRIPT_KINDS = (
    EventKind.ASSISTANT_MESSAGE,
    EventKind.TOOL_CALL,
    EventKind.TOOL_RESULT,
    EventKind.APPROVAL_REQUESTED,
    EventKind.INTERRUPT,
    EventKind.ERROR,
)

# A conservative token estimate without a tokenizer: one token per 3 bytes of UTF-8 counts more
# tokens than real tokenizers give English prose or code (about 4 characters a token) and one
# per character for CJK text (3 bytes each). Where a conversation is denser still, the
# provider's reported usage raises the estimate (``ContextWindow.observe``).
BYTES_PER_TOKEN = 3
# What a message costs beyond its JSON (the chat template's role markers), rounded up.
MESSAGE_OVERHEAD_TOKENS = 4

LOST_CALL_RESULT = "The worker running this call was lost; its outcome is unknown."
STOPPED_WAITING_RESULT = "Not run: the turn was stopped while this call waited for approval."
STOPPED_RUNNING_RESULT = "No result: the turn was stopped while this call ran."
STOP_NOTES = {
    StopReason.USER_CANCEL: "[The user stopped this answer here.]",
    StopReason.WORKER_DRAIN: "[This answer was cut off here: the server running it shut down.]",
    StopReason.APPROVAL_EXPIRED: (
        "[This answer ends here: an approval it waited for was not given in time.]"
    ),
    StopReason.BUDGET_EXHAUSTED: "[This answer was cut off here: the user's budget ran out.]",
}
FAILURE_NOTE = "This answer ends here: the turn failed."
OMITTED_NOTE = (
    "The oldest messages of this conversation are left out here: they no longer fit the "
    "context window."
)
TRIMMED_TEXT = "Earlier messages were left out of what the model sees, to fit its context window."


@dataclass(frozen=True)
class PastTurn:
    """An earlier top-level turn as the timeline tells it: the user's message, how the turn
    ended, and its own events ``(kind, data)`` of ``TRANSCRIPT_KINDS``, oldest first."""

    user_message: str
    status: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Reply:
    """One model call's answer: its text and tool calls, and the results recorded for them."""

    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)

    def takes_calls(self) -> bool:
        # The timeline records each call just before it runs, so a reply's calls and results
        # interleave. A call after all earlier ones were answered is told as a later model
        # call's: calls made together and run one after the other read the same to the model.
        return not self.calls or any(
            call.get("tool_call_id") not in self.results for call in self.calls
        )


def exchange(turn: PastTurn) -> list[Message]:
    """An earlier turn as model API messages: the user's message; each answer with its tool
    calls, each call followed by its recorded result (refusals, rejections and sub-agent
    answers included) or by what became of it; and, for a turn that was stopped or failed, a
    note saying where and why its answer ends."""
    replies: list[_Reply] = []
    waited_for_approval: set[str] = set()
    ending = ""
    for kind, data in turn.events:
        if kind == EventKind.ASSISTANT_MESSAGE:
            if replies and not replies[-1].calls:
                # A text followed by another answer: the first was cut off when its worker
                # drained or died, and the turn called the model again from its checkpoint.
                replies.pop()
            replies.append(_Reply(text=data.get("text") or ""))
        elif kind == EventKind.TOOL_CALL:
            if not replies or not replies[-1].takes_calls():
                replies.append(_Reply())
            replies[-1].calls.append(data)
        elif kind == EventKind.TOOL_RESULT:
            for reply in reversed(replies):
                if any(
                    call.get("tool_call_id") == data.get("tool_call_id") for call in reply.calls
                ):
                    told = str(data.get("note", "")) + str(data.get("result", ""))
                    reply.results.setdefault(data["tool_call_id"], told)
                    break
        elif kind == EventKind.APPROVAL_REQUESTED:
            waited_for_approval.add(data.get("tool_call_id"))
        elif kind == EventKind.INTERRUPT:
            ending = STOP_NOTES.get(data.get("reason"), STOP_NOTES[StopReason.USER_CANCEL])
        elif kind == EventKind.ERROR:
            reason = data.get("text")
            ending = f"[{FAILURE_NOTE} {reason}]" if reason else f"[{FAILURE_NOTE}]"

    def unanswered(call_id: str) -> str:
        if turn.status != TurnStatus.STOPPED:
            return LOST_CALL_RESULT
        return STOPPED_WAITING_RESULT if call_id in waited_for_approval else STOPPED_RUNNING_RESULT

    messages: list[Message] = [{"role": "user", "content": turn.user_message}]
    for reply in replies:
        if not reply.text and not reply.calls:
            continue
        answer: Message = {"role": "assistant", "content": reply.text or None}
        if reply.calls:
            answer["tool_calls"] = [_tool_call(call) for call in reply.calls]
        messages.append(answer)
        for call in reply.calls:
            call_id = call.get("tool_call_id")
            result = reply.results.get(call_id)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": unanswered(call_id) if result is None else result,
                }
            )
    if ending:
        last = messages[-1]
        if last["role"] == "assistant" and "tool_calls" not in last:
            last["content"] = f"{last['content']}\n\n{ending}"
        else:
            messages.append({"role": "assistant", "content": ending})
    return messages


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call.get("tool_call_id"),
        "type": "function",
        "function": {
            "name": call.get("tool", ""),
            "arguments": json.dumps(call.get("arguments") or {}, ensure_ascii=False),
        },
    }


def own_messages(messages: list[Message]) -> list[Message]:
    """A turn's own part of its checkpoint, from its user message on. Checkpoints written before
    the history was read anew on every run also hold the system prompt and the earlier turns;
    a turn's own part has no other user message, so it starts at the last one."""
    users = [i for i, message in enumerate(messages) if message.get("role") == "user"]
    return messages[users[-1] :] if users else messages


def estimate_tokens(value: Any) -> int:
    """A conservative count of the tokens ``value`` (a message, or the tool specs) costs."""
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    return math.ceil(size / BYTES_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


@dataclass(frozen=True)
class ModelInput:
    """What one model call sends: its messages, their estimated size (tool specs included,
    before scaling) and how many earlier exchanges were left out to fit."""

    messages: list[Message]
    estimated_tokens: int
    omitted: int


@dataclass
class ContextWindow:
    """What a turn knows of its model's context window: its configured size, the part kept for
    the answer, and what the provider taught it since, kept in the checkpoint and handed on to
    the session's next turn: a smaller ``limit`` it stated when it refused a request, and
    ``scale``, its count of tokens per estimated token where that is above 1."""

    context_tokens: int
    answer_reserve: int
    limit: int | None = None
    scale: float = 1.0

    @classmethod
    def restore(
        cls, *, context_tokens: int, answer_reserve: int, learned: dict[str, Any]
    ) -> "ContextWindow":
        return cls(
            context_tokens=context_tokens,
            answer_reserve=answer_reserve,
            limit=learned.get("limit"),
            scale=learned.get("scale", 1.0),
        )

    def learned(self) -> dict[str, Any]:
        known: dict[str, Any] = {}
        if self.limit is not None:
            known["limit"] = self.limit
        if self.scale > 1.0:
            known["scale"] = self.scale
        return known

    @property
    def input_budget(self) -> int:
        """Tokens the messages and tool specs may take: the window less the answer's reserve
        (never more than half the window, so a small model still gets a conversation)."""
        window = min(self.context_tokens, self.limit or self.context_tokens)
        return max(0, window - min(self.answer_reserve, window // 2))

    def tokens(self, estimated: int) -> int:
        return math.ceil(estimated * self.scale)

    def fit(
        self,
        *,
        system_prompt: str,
        history: list[list[Message]],
        current: list[Message],
        tools: list[dict[str, Any]],
    ) -> ModelInput:
        """The system prompt, then as many of the most recent earlier exchanges (``history``,
        oldest first, each one turn's messages) as fit, then the running turn (``current``),
        always whole. Exchanges are left out whole, oldest first, and the system prompt then
        says so. An agent profile without instructions sends no system prompt, except that
        note."""
        plain: list[Message] = (
            [{"role": "system", "content": system_prompt}] if system_prompt else []
        )
        noted: list[Message] = [
            {"role": "system", "content": "\n\n".join(filter(None, [system_prompt, OMITTED_NOTE]))}
        ]
        tools_tokens = estimate_tokens(tools) if tools else 0
        fixed = tools_tokens + sum(map(estimate_tokens, current))
        sizes = [sum(map(estimate_tokens, messages)) for messages in history]
        count = len(history)
        plain_tokens = sum(map(estimate_tokens, plain))
        if self.tokens(fixed + plain_tokens + sum(sizes)) > self.input_budget:
            used = fixed + sum(map(estimate_tokens, noted))
            count = 0
            for size in reversed(sizes):
                if self.tokens(used + size) > self.input_budget:
                    break
                used += size
                count += 1
        kept = history[len(history) - count :]
        system = plain if count == len(history) else noted
        messages = [*system, *(message for messages in kept for message in messages), *current]
        return ModelInput(
            messages=messages,
            estimated_tokens=tools_tokens + sum(map(estimate_tokens, messages)),
            omitted=len(history) - count,
        )

    def observe(self, sent: ModelInput, prompt_tokens: int) -> None:
        """The provider counted ``prompt_tokens`` for ``sent``: where that is more than the
        estimate, later estimates of this conversation grow to match; never below it."""
        if prompt_tokens > 0 and sent.estimated_tokens > 0:
            self.scale = max(1.0, prompt_tokens / sent.estimated_tokens)

    def refused(self, sent: ModelInput, *, limit: int | None, prompt_tokens: int | None) -> None:
        """The provider refused ``sent`` as longer than its window: believe the window
        (``limit``) and the count (``prompt_tokens``) it stated; when it stated no window, give
        the messages half of what was sent."""
        if prompt_tokens:
            self.scale = max(self.scale, prompt_tokens / max(1, sent.estimated_tokens))
        if limit is None:
            half = self.tokens(sent.estimated_tokens) // 2
            limit = half + min(self.answer_reserve, half)
        self.limit = min(limit, self.limit or limit)


def trimmed_event_data(sent: ModelInput) -> dict[str, Any]:
    return {"omitted_exchanges": sent.omitted, "text": TRIMMED_TEXT}
