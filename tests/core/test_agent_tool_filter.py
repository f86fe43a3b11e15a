"""The one rule that decides which tools a profile may use, for built-in and MCP tools alike."""

import pytest
from django.core.exceptions import ValidationError

from sessions_app.core.agents import tools_for_agent, validate_tool_entries
from sessions_app.runtime import tools


class Named(tools.Tool):
    def __init__(self, name: str):
        self.name = name


AVAILABLE = {
    name: Named(name)
    for name in (
        "get_time",
        "send_email",
        "time__get_current_time",
        "time__convert_time",
        "timezones__list",
        "files__read_file",
        "files__delete_file",
    )
}


def snapshot(*, tools: list[str], all_tools: bool = False) -> dict:
    return {
        "name": "Profile",
        "instructions": "",
        "model": "",
        "tools": tools,
        "all_tools": all_tools,
        "max_model_calls": None,
    }


def test_it_keeps_the_listed_tools_and_every_tool_of_a_listed_server():
    allowed = tools_for_agent(
        snapshot(tools=["get_time", "time__*", "files__read_file"]), AVAILABLE
    )

    assert set(allowed) == {
        "get_time",
        "time__get_current_time",
        "time__convert_time",
        "files__read_file",
    }
    assert allowed["get_time"] is AVAILABLE["get_time"]


def test_it_keeps_every_tool_for_a_profile_with_all_tools():
    allowed = tools_for_agent(snapshot(tools=[], all_tools=True), AVAILABLE)

    assert allowed == AVAILABLE


def test_it_keeps_nothing_for_a_profile_without_tools():
    assert tools_for_agent(snapshot(tools=[]), AVAILABLE) == {}


@pytest.mark.parametrize(
    "entries", [[], ["get_time", "send_email", "delegate"], ["time__*", "a-b__c_d"]]
)
def test_it_accepts_built_in_names_and_mcp_names(entries):
    validate_tool_entries(entries)


@pytest.mark.parametrize(
    "entries",
    [
        "get_time",
        {"get_time": True},
        [None],
        ["launch_rockets"],
        ["*"],
        ["time__"],
        ["time__get time"],
        ["time__" + "x" * 60],
    ],
)
def test_it_refuses_anything_else(entries):
    with pytest.raises(ValidationError):
        validate_tool_entries(entries)
