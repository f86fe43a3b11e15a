"""Tools the agent may call, and the registry built from the ``AGENT_TOOLS`` setting.

Each tool declares a JSON schema for its arguments (checked before it runs), whether a human must
approve it first, and whether a stop may cancel it mid-run.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

import jsonschema
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils.module_loading import import_string


class ToolError(Exception):
    """A failure the model is told about as the tool's result; the turn goes on."""


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


class Tool:
    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]
    needs_approval: ClassVar[bool] = False
    interruptible: ClassVar[bool] = True
    # Sub-agents get only tools that neither wait for a human nor start further sub-agents.
    for_sub_agents: ClassVar[bool] = True

    def validate(self, arguments: Any) -> None:
        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as exc:
            raise ToolError(f"Invalid arguments for {self.name}: {exc.message}") from None

    def prepare(self, arguments: Any) -> dict[str, Any]:
        """The call's arguments in the one canonical form that policy rules judge, approvers
        see, the tool runs with and receipts hash; ``ToolError`` when they are not valid."""
        self.validate(arguments)
        return arguments

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
