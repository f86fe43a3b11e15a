"""Agent profiles as a turn sees them: what each setting of a turn's snapshot of its profile
(``Agent.snapshot``) means when left empty, and the one rule that decides which tools a profile
may use.

A turn runs with the snapshot taken when it was created, never with the profile as it is now:
editing a profile changes no turn that is already running or waiting for approval.
"""

import re
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError

from sessions_app.core import tool_catalog

ToolT = TypeVar("ToolT")

# MCP tools are offered to the model as ``<server>__<tool>``; ``<server>__*`` in a profile's tool
# list stands for every tool of that server, including tools it adds later. Names keep to the
# model API's rule for function names (letters, digits, ``_`` and ``-``, at most 64).
SERVER_TOOL_SEPARATOR = "__"
EVERY_TOOL_OF_SERVER = SERVER_TOOL_SEPARATOR + "*"
TOOL_NAME_MAX_LENGTH = 64
SERVER_TOOL_ENTRY = re.compile(r"^[A-Za-z0-9_-]+__(?:\*|[A-Za-z0-9_-]+)$")


def model_for(snapshot: dict[str, Any]) -> str:
    """The model name sent to the LLM server: the profile's, else ``LLM_MODEL``."""
    return snapshot["model"] or settings.LLM_MODEL


def max_model_calls_for(snapshot: dict[str, Any]) -> int:
    """Model calls a turn may make: the profile's limit, else ``AGENT_MAX_MODEL_CALLS``."""
    limit = snapshot["max_model_calls"]
    return settings.AGENT_MAX_MODEL_CALLS if limit is None else limit


def context_window_for(snapshot: dict[str, Any]) -> tuple[int, int]:
    """The model's context window and the part of it kept for the answer, in tokens: the
    profile's, else ``AGENT_CONTEXT_TOKENS`` and ``AGENT_ANSWER_RESERVE_TOKENS``. Snapshots
    taken before profiles had these fields use the settings."""
    context = snapshot.get("context_tokens") or settings.AGENT_CONTEXT_TOKENS
    reserve = snapshot.get("answer_reserve_tokens")
    return context, settings.AGENT_ANSWER_RESERVE_TOKENS if reserve is None else reserve


def tools_for_agent(snapshot: dict[str, Any], available: dict[str, ToolT]) -> dict[str, ToolT]:
    """The tools of ``available`` (built-in and MCP alike) that the profile may use.

    Every tool a turn offers the model or runs passes through here, so a tool the profile does
    not list is never offered, whatever adds it to ``available``.
    """
    if snapshot["all_tools"]:
        return dict(available)
    return {name: tool for name, tool in available.items() if _listed(name, snapshot["tools"])}


def _listed(name: str, entries: list[str]) -> bool:
    for entry in entries:
        if entry == name:
            return True
        if entry.endswith(EVERY_TOOL_OF_SERVER) and name.startswith(entry[:-1]):
            return True
    return False


def validate_tool_entries(value: Any) -> None:
    """A profile's tool list: names of built-in tools (``AGENT_TOOLS``), ``<server>__<tool>``
    or ``<server>__*``. An MCP server's tools are checked only as names: a server may be
    registered, or list a new tool, after the profile names it."""
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise ValidationError(
            'Enter a JSON list of tool names, for example ["get_time", "time__*"].',
            code="not_a_list",
        )
    built_in = tool_catalog.built_in_names()
    unknown = [
        entry
        for entry in value
        if entry not in built_in
        and not (len(entry) <= TOOL_NAME_MAX_LENGTH and SERVER_TOOL_ENTRY.match(entry))
    ]
    if unknown:
        raise ValidationError(
            "Not a built-in tool nor an MCP tool name (<server>__<tool> or <server>__*): "
            "%(unknown)s. Built-in tools: %(built_in)s.",
            code="unknown_tool",
            params={"unknown": ", ".join(unknown), "built_in": ", ".join(sorted(built_in))},
        )
