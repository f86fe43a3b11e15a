"""The tools the runtime offers, as the lower layers may know them.

The tools themselves belong to the runtime (``sessions_app.runtime.tools``, MCP servers' tools
in ``sessions_app.mcp.tools``), which the core and the approvals app may not import. What they
need of a tool is small: which names are built in (a profile's tool list is checked against
them), which MCP tools the servers listed (a policy rule picks its tool among these and the
built-in ones) and, by name, its declaration and the canonical form of its arguments (an
approver's edit is judged as the loop judges a call). The runtime registers that here when the
app loads (``sessions_app.apps``).
"""

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured


class CatalogTool(Protocol):
    name: str
    needs_approval: bool

    def prepare(self, arguments: Any) -> dict[str, Any]:
        """The arguments in the tool's canonical form; raises the runtime's ``ToolError``."""


class ArgumentsRefused(Exception):
    """``prepare`` refused the arguments; the message says why, for the person who sent them."""


_lookup: Callable[[str], CatalogTool | None] | None = None
_built_in_names: Callable[[], Iterable[str]] | None = None
_discovered_names: Callable[[], Iterable[str]] | None = None


def register(
    *,
    lookup: Callable[[str], CatalogTool | None],
    built_in_names: Callable[[], Iterable[str]],
    discovered_names: Callable[[], Iterable[str]],
) -> None:
    global _lookup, _built_in_names, _discovered_names
    _lookup, _built_in_names, _discovered_names = lookup, built_in_names, discovered_names


def tool_named(name: str) -> CatalogTool | None:
    """The built-in or MCP tool offered under ``name``, or None when there is none now."""
    return _registered(_lookup)(name)


def built_in_names() -> set[str]:
    return set(_registered(_built_in_names)())


def discovered_names() -> set[str]:
    """The offered names (``<server>__<tool>``) of the MCP tools the servers last listed."""
    return set(_registered(_discovered_names)())


def _registered(function):
    if function is None:
        raise ImproperlyConfigured("no tool catalog registered (sessions_app.apps.ready)")
    return function
