from sessions_app import demo_model

"""Asked what the tool said, the demo model repeats the last tool result in the conversation it
was sent: conversation memory shows without an API key."""


TOOLS = [{"type": "function", "function": {"name": "get_time"}}]
QUESTION = {"role": "user", "content": "What did the tool say?"}


def answer(*messages: dict) -> tuple[str, dict | None]:
    return demo_model.plan({"messages": list(messages), "tools": TOOLS})


def test_it_repeats_the_last_tool_result_it_was_given():
    earlier = [
        {"role": "user", "content": "what time is it?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]},
        {"role": "tool", "tool_call_id": "a", "content": "09:00 (UTC)"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "and now?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "b"}]},
        {"role": "tool", "tool_call_id": "b", "content": "10:00 (UTC)"},
        {"role": "assistant", "content": "Done."},
    ]
    assert answer(*earlier, QUESTION) == ("The last tool result I was given: 10:00 (UTC)", None)


def test_it_says_so_when_no_tool_result_was_given():
    text, call = answer({"role": "user", "content": "hello"}, QUESTION)
    assert (text, call) == ("No tool has given me a result in this conversation.", None)
