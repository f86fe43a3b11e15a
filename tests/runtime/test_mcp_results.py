"""What the model gets of an MCP tool's result, and which tools can be offered by name."""

import mcp_types
import pytest

from sessions_app.mcp import client, tools
from sessions_app.runtime.tools import ToolError


def result(*content, structured=None, is_error=False) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=list(content), structured_content=structured, is_error=is_error
    )


def text(value: str) -> mcp_types.TextContent:
    return mcp_types.TextContent(type="text", text=value)


def test_it_joins_text_and_adds_structured_content_the_text_does_not_say():
    answer = result(text("Two lines"), text("of text"), structured={"rows": 2})

    assert client.result_text(answer) == 'Two lines\nof text\n{"rows": 2}'


def test_it_does_not_repeat_structured_content_the_text_already_says():
    assert client.result_text(result(text('{"a": 1}'), structured={"a": 1})) == '{"a": 1}'
    assert client.result_text(result(text("plain"), structured={"result": "plain"})) == "plain"


def test_it_names_content_it_leaves_out():
    image = mcp_types.ImageContent(type="image", data="aGk=", mime_type="image/png")

    assert client.result_text(result(image)) == "[image content left out]"
    assert client.result_text(result()) == "(no output)"


def test_it_cuts_a_long_result(settings):
    settings.AGENT_MCP_MAX_RESULT_CHARS = 10

    assert client.result_text(result(text("x" * 25))) == (
        "xxxxxxxxxx\n[cut: the first 10 of the result's 25 characters]"
    )


def test_offered_names_keep_to_the_model_api_rule():
    spec = tools.ServerSpec(name="files", transport="stdio", command="files-server")
    listed = [{"name": "read"}, {"name": "dotted.name"}, {"name": "x" * 60}]

    offered = tools.tools_of(spec, listed)

    assert list(offered) == ["files__read"]
    assert offered["files__read"].openai_spec()["function"]["parameters"] == {"type": "object"}


@pytest.mark.parametrize(
    ("annotations", "needs_approval"),
    [
        ({"readOnlyHint": True}, False),
        ({"readOnlyHint": True, "destructiveHint": True}, False),
        ({"readOnlyHint": False}, True),
        ({"destructiveHint": False}, True),
        (None, True),
    ],
)
def test_only_a_read_only_tool_runs_unasked_by_default(annotations, needs_approval):
    spec = tools.ServerSpec(name="s", transport="stdio", command="c")
    listed = {"name": "t", **({"annotations": annotations} if annotations is not None else {})}

    tool = tools.tools_of(spec, [listed])["s__t"]

    assert tool.needs_approval is needs_approval
    assert tool.for_sub_agents is not needs_approval


def test_arguments_are_checked_against_the_input_schema():
    spec = tools.ServerSpec(name="s", transport="stdio", command="c")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    tool = tools.tools_of(spec, [{"name": "t", "inputSchema": schema}])["s__t"]

    tool.validate({"n": 1})
    with pytest.raises(ToolError):
        tool.validate({"n": "one"})
