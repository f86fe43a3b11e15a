from sessions_app import demo_model

"""The demo model calls any tool it is offered when asked by name: `call <tool> {json}`."""


OFFERED = [{"type": "function", "function": {"name": "time__get_current_time"}}]


def plan(message: str, tools=OFFERED):
    return demo_model.plan({"messages": [{"role": "user", "content": message}], "tools": tools})


def test_it_calls_an_offered_tool_with_the_arguments_given():
    assert plan('call time__get_current_time {"timezone": "Asia/Tokyo"}') == (
        "",
        {"name": "time__get_current_time", "arguments": {"timezone": "Asia/Tokyo"}},
    )
    assert plan("Call time__get_current_time") == (
        "",
        {"name": "time__get_current_time", "arguments": {}},
    )


def test_it_says_so_when_it_has_no_such_tool_or_the_arguments_are_not_json():
    assert plan("call nothing__here {}") == (
        "I have no tool called nothing__here. The tools I have: time__get_current_time.",
        None,
    )
    assert plan("call time__get_current_time {oops}") == (
        "The arguments for time__get_current_time are not valid JSON: {oops}",
        None,
    )
