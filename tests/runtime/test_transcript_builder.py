"""The transcript builder on its own, without a database or a model: earlier turns as the model
API's messages, and the history kept within the context window."""

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.runtime import transcript
from sessions_app.runtime.transcript import ContextWindow, PastTurn, estimate_tokens

SYSTEM = "You are a test assistant."


def call(call_id: str, tool: str = "get_time", **arguments) -> tuple[str, dict]:
    return (EventKind.TOOL_CALL, {"tool_call_id": call_id, "tool": tool, "arguments": arguments})


def result(call_id: str, text: str, tool: str = "get_time") -> tuple[str, dict]:
    return (
        EventKind.TOOL_RESULT,
        {"tool_call_id": call_id, "tool": tool, "ok": True, "result": text},
    )


def said(text: str) -> tuple[str, dict]:
    return (EventKind.ASSISTANT_MESSAGE, {"text": text, "streaming": False})


def asked(call_id: str) -> tuple[str, dict]:
    return (EventKind.APPROVAL_REQUESTED, {"approval": 1, "tool_call_id": call_id})


def stopped(reason: str = StopReason.USER_CANCEL) -> tuple[str, dict]:
    return (EventKind.INTERRUPT, {"reason": reason, "text": "Stopped by the user."})


def assistant_calls(*calls: tuple[str, str], text: str | None = None) -> dict:
    return {
        "role": "assistant",
        "content": text,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in calls
        ],
    }


def tool(call_id: str, content: str) -> dict:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def test_it_tells_a_turn_with_a_tool_call_in_the_model_api_shapes():
    turn = PastTurn(
        user_message="what time is it?",
        status=TurnStatus.COMPLETED,
        events=[call("c1", timezone="UTC"), result("c1", "12:00 UTC"), said("It is noon.")],
    )
    assert transcript.exchange(turn) == [
        {"role": "user", "content": "what time is it?"},
        assistant_calls(("c1", "get_time", '{"timezone": "UTC"}')),
        tool("c1", "12:00 UTC"),
        {"role": "assistant", "content": "It is noon."},
    ]


def test_it_keeps_calls_made_together_in_one_answer_and_each_later_call_in_its_own():
    together = PastTurn(
        user_message="email two people",
        status=TurnStatus.COMPLETED,
        events=[
            said("Sending both."),
            call("a", "send_email"),
            call("b", "send_email"),
            result("b", "sent b", "send_email"),
            asked("a"),
            result("a", "sent a", "send_email"),
            said("Both sent."),
        ],
    )
    assert transcript.exchange(together)[1:] == [
        assistant_calls(("a", "send_email", "{}"), ("b", "send_email", "{}"), text="Sending both."),
        tool("a", "sent a"),
        tool("b", "sent b"),
        {"role": "assistant", "content": "Both sent."},
    ]
    one_after_another = PastTurn(
        user_message="time twice",
        status=TurnStatus.COMPLETED,
        events=[call("a"), result("a", "1"), call("b"), result("b", "2"), said("Done.")],
    )
    assert transcript.exchange(one_after_another)[1:] == [
        assistant_calls(("a", "get_time", "{}")),
        tool("a", "1"),
        assistant_calls(("b", "get_time", "{}")),
        tool("b", "2"),
        {"role": "assistant", "content": "Done."},
    ]


def test_it_leaves_out_an_answer_cut_off_by_a_drain_and_made_again():
    turn = PastTurn(
        user_message="tell me a story",
        status=TurnStatus.COMPLETED,
        events=[said("Once upon"), said("Once upon a time. The end.")],
    )
    assert transcript.exchange(turn) == [
        {"role": "user", "content": "tell me a story"},
        {"role": "assistant", "content": "Once upon a time. The end."},
    ]


def test_it_notes_where_a_stopped_answer_ends():
    turn = PastTurn(
        user_message="tell me a story",
        status=TurnStatus.STOPPED,
        events=[said("Once upon a"), stopped()],
    )
    assert transcript.exchange(turn)[-1] == {
        "role": "assistant",
        "content": "Once upon a\n\n[The user stopped this answer here.]",
    }
    drained = PastTurn(
        user_message="hi",
        status=TurnStatus.STOPPED,
        events=[stopped(StopReason.WORKER_DRAIN)],
    )
    assert transcript.exchange(drained)[-1] == {
        "role": "assistant",
        "content": transcript.STOP_NOTES[StopReason.WORKER_DRAIN],
    }


def test_it_answers_calls_a_stop_left_without_a_result():
    turn = PastTurn(
        user_message="email and time",
        status=TurnStatus.STOPPED,
        events=[call("e", "send_email"), call("t"), asked("e"), stopped()],
    )
    assert transcript.exchange(turn)[1:] == [
        assistant_calls(("e", "send_email", "{}"), ("t", "get_time", "{}")),
        tool("e", transcript.STOPPED_WAITING_RESULT),
        tool("t", transcript.STOPPED_RUNNING_RESULT),
        {"role": "assistant", "content": "[The user stopped this answer here.]"},
    ]


def test_it_says_a_lost_call_has_an_unknown_outcome():
    turn = PastTurn(
        user_message="time",
        status=TurnStatus.COMPLETED,
        events=[call("t"), said("I could not tell the time.")],
    )
    assert transcript.exchange(turn)[2] == tool("t", transcript.LOST_CALL_RESULT)


def test_it_notes_a_failed_turn_with_its_reason():
    turn = PastTurn(
        user_message="hello",
        status=TurnStatus.FAILED,
        events=[(EventKind.ERROR, {"code": "llm_error", "text": "The model server failed."})],
    )
    assert transcript.exchange(turn) == [
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "content": "[This answer ends here: the turn failed. The model server failed.]",
        },
    ]


def test_it_reads_a_checkpoint_written_with_the_history_inside():
    own = [{"role": "user", "content": "now"}, {"role": "assistant", "content": "ok"}]
    older = [
        {"role": "system", "content": "old prompt"},
        {"role": "user", "content": "before"},
        {"role": "assistant", "content": "answer"},
    ]
    assert transcript.own_messages(older + own) == own
    assert transcript.own_messages(own) == own


def exchanges(count: int, size: int) -> list[list[dict]]:
    return [
        [
            {"role": "user", "content": f"question {n} " + "x" * size},
            {"role": "assistant", "content": f"answer {n} " + "y" * size},
        ]
        for n in range(count)
    ]


def size_of(sent: transcript.ModelInput, tools: list[dict]) -> int:
    return sum(map(estimate_tokens, sent.messages)) + (estimate_tokens(tools) if tools else 0)


TOOLS = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
CURRENT = [{"role": "user", "content": "and now?"}]


def test_it_sends_everything_while_it_fits():
    history = exchanges(3, 30)
    window = ContextWindow(context_tokens=10_000, answer_reserve=1_000)
    sent = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)
    assert sent.omitted == 0
    assert sent.messages == [
        {"role": "system", "content": SYSTEM},
        *history[0],
        *history[1],
        *history[2],
        *CURRENT,
    ]
    assert sent.estimated_tokens == size_of(sent, TOOLS)


def test_it_leaves_out_the_oldest_whole_exchanges_with_a_note():
    history = exchanges(10, 300)
    window = ContextWindow(context_tokens=1_200, answer_reserve=200)
    sent = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)

    assert 0 < sent.omitted < 10
    assert sent.estimated_tokens == size_of(sent, TOOLS) <= window.input_budget
    assert sent.messages[0] == {
        "role": "system",
        "content": f"{SYSTEM}\n\n{transcript.OMITTED_NOTE}",
    }
    kept = [message for messages in history[sent.omitted :] for message in messages]
    assert sent.messages[1:] == [*kept, *CURRENT]
    # One more exchange would not have fit.
    one_more = sum(map(estimate_tokens, history[sent.omitted - 1]))
    assert window.tokens(sent.estimated_tokens + one_more) > window.input_budget


def test_it_always_sends_the_running_turn_whole():
    current = [{"role": "user", "content": "z" * 10_000}]
    window = ContextWindow(context_tokens=1_000, answer_reserve=100)
    sent = window.fit(system_prompt=SYSTEM, history=exchanges(2, 10), current=current, tools=[])
    assert sent.omitted == 2
    assert sent.messages[-1] == current[0]


def test_it_trusts_the_providers_count_where_it_is_higher_than_the_estimate():
    history = exchanges(10, 300)
    window = ContextWindow(context_tokens=100_000, answer_reserve=1_000)
    sent = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)

    window.observe(sent, sent.estimated_tokens // 2)
    assert window.scale == 1.0
    window.observe(sent, sent.estimated_tokens * 2)
    assert window.scale == 2.0
    assert window.learned() == {"scale": 2.0}

    window.context_tokens = sent.estimated_tokens + 1_000
    again = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)
    assert again.omitted > 0
    assert window.tokens(again.estimated_tokens) <= window.input_budget


def test_it_keeps_to_the_window_a_refusal_states():
    history = exchanges(10, 300)
    window = ContextWindow(context_tokens=100_000, answer_reserve=500)
    sent = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)

    window.refused(sent, limit=2_000, prompt_tokens=None)
    assert window.learned() == {"limit": 2_000}
    assert window.input_budget == 1_500
    shorter = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)
    assert shorter.omitted > 0
    assert shorter.estimated_tokens <= 1_500


def test_it_halves_what_it_sends_after_a_refusal_that_states_no_window():
    history = exchanges(10, 300)
    window = ContextWindow(context_tokens=100_000, answer_reserve=500)
    sent = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)

    window.refused(sent, limit=None, prompt_tokens=None)
    assert window.input_budget == sent.estimated_tokens // 2
    shorter = window.fit(system_prompt=SYSTEM, history=history, current=CURRENT, tools=TOOLS)
    assert shorter.estimated_tokens <= sent.estimated_tokens // 2


def test_a_small_window_keeps_half_for_the_conversation():
    window = ContextWindow(context_tokens=4_000, answer_reserve=4_096)
    assert window.input_budget == 2_000
