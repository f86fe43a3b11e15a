"""Which outcome a tool call gets: the first matching policy rule of its tool (and of the turn's
agent profile, for rules that name one), else the tool's own declaration (``needs_approval``).

A rule whose condition cannot tell (``conditions.Undecided``) fails closed: an ``allow`` rule
does not apply, a ``deny`` or ``require_approval`` rule does. A condition's meaning must not flip
on a value it cannot read: "deny mail to evil.com" still holds back a recipient whose domain it
cannot judge, and "allow mail to example.com" lets none through.
"""

import logging
import threading
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q

from approvals_app import conditions
from approvals_app.models import Outcome, PolicyRule, SessionGrant

logger = logging.getLogger(__name__)

TOOL_DEFAULT = "the tool's default"

# The faults already logged by this process, per rule and condition: a pattern that runs out of
# time would otherwise log at every call of the tool.
_faults_logged: set[tuple[int, str, str]] = set()
_faults_lock = threading.Lock()


@dataclass(frozen=True)
class Verdict:
    outcome: str
    rule_id: int | None
    rule_name: str
    approvals_needed: int = 1
    allow_self_approval: bool = True
    group_id: int | None = None
    escalate_to_id: int | None = None
    escalate_after_seconds: float | None = None

    @property
    def denies(self) -> bool:
        return self.outcome == Outcome.DENY

    @property
    def requires_approval(self) -> bool:
        return self.outcome == Outcome.REQUIRE_APPROVAL

    def as_event_data(self) -> dict[str, Any]:
        """How the timeline names the rule that decided a call."""
        return {"rule": self.rule_id, "name": self.rule_name, "outcome": self.outcome}

    def approval_needs(self) -> dict[str, Any]:
        """What the approval request of a call must satisfy (see ``turn_park_for_approval``)."""
        return {
            "approvals_needed": self.approvals_needed,
            "allow_self_approval": self.allow_self_approval,
            "group": self.group_id,
            "escalate_to": self.escalate_to_id,
            "escalate_after": self.escalate_after_seconds,
            "policy": self.as_event_data(),
        }


def policy_verdict(
    *, tool_name: str, needs_approval: bool, arguments: dict[str, Any], agent_id: int | None
) -> Verdict:
    """The verdict on one call of a turn run by the agent profile ``agent_id``: rules for every
    profile and those for this one are tried together, in their order."""
    rules = PolicyRule.objects.filter(
        Q(agent__isnull=True) | Q(agent_id=agent_id), tool_name=tool_name
    ).order_by("position", "id")
    for rule in rules:
        if _applies(rule, arguments):
            return Verdict(
                outcome=rule.outcome,
                rule_id=rule.pk,
                rule_name=rule.name,
                approvals_needed=rule.quorum,
                allow_self_approval=rule.allow_self_approval,
                group_id=rule.group_id,
                escalate_to_id=rule.escalate_to_id,
                escalate_after_seconds=(
                    rule.escalate_after.total_seconds() if rule.escalate_after else None
                ),
            )
    default = Outcome.REQUIRE_APPROVAL if needs_approval else Outcome.ALLOW
    return Verdict(outcome=default, rule_id=None, rule_name=TOOL_DEFAULT)


def _applies(rule: PolicyRule, arguments: dict[str, Any]) -> bool:
    try:
        return conditions.matches(
            arguments, field=rule.field, operator=rule.operator, value=rule.value
        )
    except conditions.Undecided as undecided:
        if undecided.fault:
            _log_once(rule, undecided.fault)
        return rule.outcome != Outcome.ALLOW


def _log_once(rule: PolicyRule, fault: str) -> None:
    key = (rule.pk, rule.field, rule.value)
    with _faults_lock:
        if key in _faults_logged:
            return
        _faults_logged.add(key)
    logger.warning(
        'policy rule "%s" (#%s) on %s.%s: %s; it counts as %s (fail closed)',
        rule.name,
        rule.pk,
        rule.tool_name,
        rule.field,
        fault,
        "not matching" if rule.outcome == Outcome.ALLOW else "matching",
    )


@dataclass(frozen=True)
class GrantUse:
    grant_id: int
    granted_by: str

    def as_event_data(self, *, tool_call_id: str, tool: str) -> dict[str, Any]:
        """The approval_decided event of a call a grant let through."""
        return {
            "tool_call_id": tool_call_id,
            "tool": tool,
            "decision": "approved",
            "status": "approved",
            "grant": self.grant_id,
            "decided_by": self.granted_by,
        }


def session_grant_for(
    *, session_id, tool_name: str, arguments: dict[str, Any], verdict: Verdict
) -> GrantUse | None:
    """The session grant that approves this call now, if any. A grant stands in for one
    approval by its granter, so it applies only where the call's rule would have accepted that
    approval alone: a single approver, of the rule's group, not the requester under four-eyes.
    """
    if verdict.outcome != Outcome.REQUIRE_APPROVAL or verdict.approvals_needed > 1:
        return None
    grants = SessionGrant.objects.filter(
        session_id=session_id, tool_name=tool_name, revoked_at__isnull=True
    ).select_related("granted_by")
    if verdict.group_id:
        grants = grants.filter(granted_by__groups=verdict.group_id)
    if not verdict.allow_self_approval:
        grants = grants.exclude(granted_by=F("session__owner"))
    for grant in grants:
        if all(
            name in arguments and arguments[name] == value for name, value in grant.match.items()
        ):
            who = grant.granted_by.get_username() if grant.granted_by else "an approver"
            return GrantUse(grant_id=grant.pk, granted_by=who)
    return None
