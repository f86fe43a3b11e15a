"""Tools the agent may call, and the registry built from the ``AGENT_TOOLS`` setting.

Each tool declares a JSON schema for its arguments (checked before it runs), whether a human must
approve it first, and whether a stop may cancel it mid-run. ``Tool.prepare`` turns a call's
arguments into the one canonical form that policy rules judge, approvers see, the tool runs with
and receipts hash.
"""

import json
import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

import jsonschema
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address
from django.utils.module_loading import import_string

from agentproj import email_addresses, json_limits, metrics, tracing
from agentproj.validators import text_problem
from sessions_app.core import tool_catalog

# Schema formats are checked, not only described. "email" is held to the same strict parse as
# send_email's recipient (jsonschema's own check is only that an "@" is present).
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("email", raises=email_addresses.InvalidAddress)
def _is_plain_address(value: object) -> bool:
    if isinstance(value, str):
        email_addresses.canonical_address(value)
    return True


# Schema errors whose message names only argument names, never a value the call holds.
NAMES_ONLY = frozenset({"required", "additionalProperties", "dependentRequired"})
# A schema's rule quoted in a refusal is cut here: an MCP server's schema may be long.
RULE_QUOTE_LIMIT = 200


class ToolError(Exception):
    """A failure the model is told about as the tool's result; the turn goes on."""


class InvalidArguments(ToolError, tool_catalog.ArgumentsRefused):
    """Arguments ``Tool.prepare`` refused: told to the model as the call's result, or to the
    approver whose edit they were."""


class SubAgentRunner(Protocol):
    async def __call__(self, task: str) -> str: ...


class ProgressRecorder(Protocol):
    async def __call__(self, progress: dict[str, Any]) -> None: ...


@dataclass
class ToolContext:
    turn_id: int
    tool_call_id: str
    run_sub_agent: SubAgentRunner
    # Puts a long call's progress in the timeline (a tool_progress event).
    record_progress: ProgressRecorder | None = None
    # The call's execute_tool span, for what the tool calls in turn (an MCP server's request).
    trace: tracing.Context = field(default_factory=tracing.Context)


class Tool:
    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]
    needs_approval: ClassVar[bool] = False
    interruptible: ClassVar[bool] = True
    # Sub-agents get only tools that neither wait for a human nor start further sub-agents.
    for_sub_agents: ClassVar[bool] = True
    # Top-level string arguments that a reader sees on one line (a mail's subject): no line
    # breaks. Every other string may span lines.
    one_line_arguments: ClassVar[frozenset[str]] = frozenset()

    def validate(self, arguments: Any) -> None:
        """Check ``arguments`` against the schema, formats included."""
        try:
            jsonschema.validate(arguments, self.parameters, format_checker=FORMATS)
        except jsonschema.ValidationError as exc:
            raise self.invalid(_schema_problem(exc)) from None

    def prepare(self, arguments: Any) -> dict[str, Any]:
        """The call's arguments in the one canonical form that policy rules judge, approvers
        see, the tool runs with and receipts hash; ``ToolError`` when they are not valid.

        First what any reader of them needs (bounded nesting, finite numbers, and every string,
        names included, held to ``human_text``), so that no refusal or record holds a NUL or a
        bidi override; then the schema; then the tool's own ``canonical`` form."""
        try:
            json_limits.check(arguments)
        except json_limits.InvalidJson as exc:
            raise self.invalid(exc.detail) from None
        if problem := _text_problem(arguments, one_line=self.one_line_arguments):
            raise self.invalid(problem)
        self.validate(arguments)
        return self.canonical(arguments)

    def canonical(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Valid arguments as the tool will use them (a tool that reads a value another way
        than as written says so here, so that rules judge what runs)."""
        return arguments

    def invalid(self, problem: str) -> InvalidArguments:
        """The refusal the model is told: which argument and why, never the value itself."""
        return InvalidArguments(f"Invalid arguments for {self.name}: {problem}")

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        raise NotImplementedError

    def openai_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


async def run_timed(tool: Tool, arguments: dict[str, Any], context: ToolContext) -> str:
    """Run one call of ``tool``, and count how long it took, stopped or failed ones too."""
    started = time.monotonic()
    try:
        return await tool.run(arguments, context)
    finally:
        metrics.TOOL_CALL.labels(tool.name).observe(time.monotonic() - started)


class GetTime(Tool):
    name = "get_time"
    description = "Current date and time, optionally in an IANA timezone such as Europe/Paris."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"timezone": {"type": "string"}},
        "additionalProperties": False,
    }

    async def run(self, arguments, context):
        name = arguments.get("timezone") or "UTC"
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"Unknown timezone: {name}") from None
        return datetime.now(zone).strftime(f"%Y-%m-%d %H:%M:%S ({name})")


class SendEmail(Tool):
    name = "send_email"
    description = "Send an email. A human approves every email before it is sent."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "to": {"type": "string", "format": "email", "minLength": 3, "maxLength": 254},
            "subject": {"type": "string", "maxLength": 200},
            "body": {"type": "string", "maxLength": 20000},
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    }
    needs_approval = True
    # Once handed to the mail server an email cannot be unsent: let it finish and record it.
    interruptible = False
    for_sub_agents = False
    one_line_arguments = frozenset({"to", "subject"})

    def canonical(self, arguments):
        """The recipient as one canonical address: what rules judge is what the mailer uses."""
        try:
            recipient = email_addresses.canonical_address(arguments["to"])
        except email_addresses.InvalidAddress:
            raise self.invalid(f"to {email_addresses.PLAIN_ADDRESS_RULE}") from None
        # Judge what will run: the SMTP backend puts sanitize_address's reading of the
        # recipient in RCPT TO. Should it ever read the canonical address otherwise, refuse.
        if sanitize_address(recipient, settings.DEFAULT_CHARSET) != recipient:
            raise self.invalid(f"to {email_addresses.PLAIN_ADDRESS_RULE}")
        return {**arguments, "to": recipient}

    async def run(self, arguments, context):
        message = EmailMessage(
            subject=arguments["subject"],
            body=arguments["body"],
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[arguments["to"]],
            # The tool call id is the idempotency key: downstream can drop a duplicate delivery.
            headers={"X-Idempotency-Key": f"turn-{context.turn_id}-{context.tool_call_id}"},
        )
        # Off asgiref's shared thread: a slow mail server must not hold up the rest of the turn.
        await sync_to_async(message.send, thread_sensitive=False)(fail_silently=False)
        return f"Email sent to {arguments['to']}."


class Delegate(Tool):
    name = "delegate"
    description = "Hand a self-contained task to a sub-agent and get its final answer."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"task": {"type": "string", "minLength": 1, "maxLength": 4000}},
        "required": ["task"],
        "additionalProperties": False,
    }
    for_sub_agents = False

    async def run(self, arguments, context):
        return await context.run_sub_agent(arguments["task"])


def _where(path: tuple[str | int, ...]) -> str:
    """An argument's place, as the model wrote it: ``to``, ``items[2].name``."""
    if not path:
        return "the arguments"
    where = ""
    for part in path:
        if isinstance(part, int):
            where += f"[{part}]"
        elif part.isidentifier():
            where += f".{part}" if where else part
        else:
            where += f"[{json.dumps(part)}]"
    return where


def _text_problem(arguments: Any, *, one_line: frozenset[str]) -> str:
    """Why a string in ``arguments`` (a value or a name, at any depth) may not reach a reader,
    naming where it is; "" when none. Nesting is bounded before this runs."""
    pending: list[tuple[tuple[str | int, ...], Any]] = [((), arguments)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            single = len(path) == 1 and path[0] in one_line
            if problem := text_problem(value, one_line=single):
                return f"{_where(path)}: {problem}"
        elif isinstance(value, dict):
            for name, item in value.items():
                if problem := text_problem(str(name), one_line=True):
                    return f"a name in {_where(path)}: {problem}"
                pending.append(((*path, name), item))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in enumerate(value))
    return ""


def _schema_problem(error: jsonschema.ValidationError) -> str:
    """A schema refusal that names the argument and the rule it breaks. jsonschema's own
    messages quote the value, which may be long or a secret; only those naming arguments are
    kept."""
    where = _where(tuple(error.absolute_path))
    if error.validator in NAMES_ONLY:
        return error.message if not error.absolute_path else f"{where}: {error.message}"
    if error.validator == "format" and error.validator_value == "email":
        return f"{where} {email_addresses.PLAIN_ADDRESS_RULE}"
    # ASCII escapes: a schema from an MCP server may hold control characters itself.
    rule = json.dumps({error.validator: error.validator_value}, default=str)
    if len(rule) > RULE_QUOTE_LIMIT:
        rule = rule[:RULE_QUOTE_LIMIT] + "…"
    return f"{where}: not allowed by the schema's rule {rule}"


def registry() -> dict[str, Tool]:
    tools = [import_string(path)() for path in settings.AGENT_TOOLS]
    return {tool.name: tool for tool in tools}


def for_turn(*, is_sub_agent: bool, extra: dict[str, Tool] | None = None) -> dict[str, Tool]:
    """The tools a turn may use: the registry's, then ``extra`` (MCP servers' tools) under
    names the registry does not use."""
    tools = registry()
    for name, tool in (extra or {}).items():
        tools.setdefault(name, tool)
    if is_sub_agent:
        return {name: tool for name, tool in tools.items() if tool.for_sub_agents}
    return tools
