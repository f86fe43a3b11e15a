"""``Tool.prepare``: a call's arguments in the one canonical form rules judge and tools run with,
or a refusal that names the argument and never quotes its value."""

import pytest

from sessions_app.mcp import tools
from sessions_app.runtime.tools import SendEmail, ToolError

MAIL = {"subject": "Hello", "body": "Line one.\r\nLine two,\ttabbed."}
NOT_PLAIN = (
    "Invalid arguments for send_email: to must be one plain e-mail address such as "
    "name@example.com (no display name, comment, angle brackets, quotes, spaces or second "
    "address)"
)


@pytest.mark.parametrize(
    ("to", "canonical"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Ann.Lee+news@EXAMPLE.Com", "Ann.Lee+news@example.com"),
        ("spy@\uff45\uff56\uff49\uff4c.com", "spy@evil.com"),  # full-width "evil"
        ("spy@evil\u3002com", "spy@evil.com"),  # an ideographic full stop
        ("kurt@bücher.de", "kurt@xn--bcher-kva.de"),
        ("o'brien@example.com", "o'brien@example.com"),
    ],
)
def test_it_makes_the_recipient_one_canonical_address(to, canonical):
    prepared = SendEmail().prepare({"to": to, **MAIL})

    assert prepared == {"to": canonical, **MAIL}


@pytest.mark.parametrize(
    "to",
    [
        "spy@evil.com (ann@example.com",
        "Ann <ann@example.com>",
        "<ann@example.com>",
        '"ann lee"@example.com',
        "ann@example.com, spy@evil.com",
        "ann@example.com spy@evil.com",
        "ann@spy@evil.com",
        "ann@evil.com.",
        "ann@localhost",
        "ann@[127.0.0.1]",
        "ann@ex_ample.com",
        "ann..lee@example.com",
        "änn@example.com",
        "a" * 65 + "@example.com",
        "ann@example.com\u200e",
    ],
)
def test_it_refuses_a_recipient_that_is_not_one_plain_address(to):
    with pytest.raises(ToolError) as refused:
        SendEmail().prepare({"to": to, **MAIL})

    assert str(refused.value) == NOT_PLAIN


def mcp_tool(schema) -> tools.McpTool:
    spec = tools.ServerSpec(name="s", transport="stdio", command="c")
    return tools.tools_of(spec, [{"name": "t", "inputSchema": schema}])["s__t"]


def test_it_checks_an_mcp_tools_email_format_without_quoting_the_value():
    tool = mcp_tool({"type": "object", "properties": {"cc": {"type": "string", "format": "email"}}})

    with pytest.raises(ToolError) as refused:
        tool.prepare({"cc": "secret-token (x@example.com"})

    assert str(refused.value).startswith("Invalid arguments for s__t: cc must be one plain")
    assert "secret-token" not in str(refused.value)


def test_it_names_where_a_nested_string_breaks_the_plain_text_rule():
    tool = mcp_tool({"type": "object"})

    with pytest.raises(ToolError) as refused:
        tool.prepare({"rows": [{"name": "ok"}, {"name": "fine", "note": "\x1b]8;;evil\x07"}]})

    assert str(refused.value).startswith("Invalid arguments for s__t: rows[1].note: Control")
    assert "evil" not in str(refused.value)


def test_it_holds_an_mcp_tool_with_an_invalid_schema_to_the_plain_text_rule_only():
    tool = mcp_tool({"type": "object", "properties": {"n": {"type": "no such type"}}})

    assert tool.prepare({"n": "anything\nat all"}) == {"n": "anything\nat all"}
    with pytest.raises(ToolError):
        tool.prepare({"n": "\x00"})
