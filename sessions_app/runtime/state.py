"""What a turn carries from one model call to the next, and checkpoints: its own conversation so
far and its progress, restored from the turn's row when it runs again (resumed after approval,
handed back by a draining worker, taken over after a lost one)."""

from dataclasses import dataclass, field
from typing import Any

from sessions_app.core import agents
from sessions_app.models import Turn
from sessions_app.runtime import llm, transcript


@dataclass
class TurnState:
    """Its own conversation (its user message, then the model's replies and the tool results)
    and its progress. The earlier turns (``history``) are not part of its checkpoint: each run
    of the turn reads them from the timeline."""

    messages: list[dict[str, Any]]
    window: transcript.ContextWindow
    model_calls: int = 0
    output_chars: int = 0
    awaiting_approval: list[dict[str, Any]] = field(default_factory=list)
    # What its model calls used (``usage.CallUsage.add_to``), saved with each one's record.
    usage: dict[str, Any] = field(default_factory=dict)
    history: list[list[dict[str, Any]]] = field(default_factory=list)
    context_trimmed: bool = False

    @classmethod
    def of(
        cls, turn: Turn, *, past: list[transcript.PastTurn], learned: dict[str, Any]
    ) -> "TurnState":
        """The turn's checkpoint, or a fresh conversation; ``past`` and ``learned``: the
        session's turns before it (``history.turn_history``)."""
        saved = turn.checkpoint or {}
        context_tokens, answer_reserve = agents.context_window_for(turn.agent_snapshot)
        state = cls(
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
        state._answer_dangling_calls()
        return state

    def add_reply(self, reply: llm.ModelReply) -> None:
        """A model call's reply joins the conversation."""
        self.model_calls += 1
        self.output_chars += reply.output_chars
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
        self.messages.append(assistant)

    def answered_calls(self) -> set[str]:
        return {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}

    def _answer_dangling_calls(self) -> None:
        """After a lost worker, a checkpoint may hold tool calls without results; the model must
        get an answer for each, and a call whose outcome is unknown is not run again."""
        answered = self.answered_calls() | {call["id"] for call in self.awaiting_approval}
        for message in list(self.messages):
            for call in message.get("tool_calls") or []:
                if call["id"] not in answered:
                    self.messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": call["id"],
                            "content": transcript.LOST_CALL_RESULT,
                        }
                    )

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
