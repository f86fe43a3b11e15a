"""Which outcome a tool call gets: the first matching policy rule of its tool, else the tool's
own declaration (``needs_approval``)."""

from dataclasses import dataclass
from typing import Any

from . import conditions
from .models import Outcome, PolicyRule

TOOL_DEFAULT = "the tool's default"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    rule_id: int | None
    rule_name: str
    approvals_needed: int = 1
    allow_self_approval: bool = True
    group_id: int | None = None

    def as_event_data(self) -> dict[str, Any]:
        """How the timeline names the rule that decided a call."""
        return {"rule": self.rule_id, "name": self.rule_name, "outcome": self.outcome}

    def approval_needs(self) -> dict[str, Any]:
        """What the approval request of a call must satisfy (see ``turn_park_for_approval``)."""
        return {
            "approvals_needed": self.approvals_needed,
            "allow_self_approval": self.allow_self_approval,
            "group": self.group_id,
            "policy": self.as_event_data(),
        }


def policy_verdict(*, tool_name: str, needs_approval: bool, arguments: dict[str, Any]) -> Verdict:
    for rule in PolicyRule.objects.filter(tool_name=tool_name).order_by("position", "id"):
        if conditions.matches(
            arguments, field=rule.field, operator=rule.operator, value=rule.value
        ):
            return Verdict(
                outcome=rule.outcome,
                rule_id=rule.pk,
                rule_name=rule.name,
                approvals_needed=rule.quorum,
                allow_self_approval=rule.allow_self_approval,
                group_id=rule.group_id,
            )
    default = Outcome.REQUIRE_APPROVAL if needs_approval else Outcome.ALLOW
    return Verdict(outcome=default, rule_id=None, rule_name=TOOL_DEFAULT)
