"""How the timeline's states read: decisions and the approval cards they change, a grant's match,
a tool's progress, arguments and results. One wording each, for the page and the socket alike."""

import json
from typing import Any


def pretty(value: Any) -> str:
    """JSON as the page shows it. Keys are sorted: PostgreSQL's jsonb keeps no order, and a page
    drawn from stored rows must read the same on every backend as one drawn live."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def match_conditions(match: dict) -> str:
    """How a grant's match reads: ``to is "x@example.com"`` per field, in name order."""
    return " and ".join(
        f"{name} is {json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
        for name, value in sorted(match.items())
    )


# Decisions


def _decided_by(decision: dict[str, Any]) -> str:
    verb = "Approved" if decision.get("decision") == "approved" else "Rejected"
    return f"{verb} by {decision.get('decided_by')}"


def _quorum(decision: dict[str, Any]) -> str:
    return f"({decision.get('approvals_given')} of {decision.get('approvals_needed')})"


def _reason(decision: dict[str, Any]) -> str:
    return f": {decision['reason']}" if decision.get("reason") else ""


def decision_text(decision: dict[str, Any]) -> str:
    """An approval_decided event's line: who decided, a quorum's progress, the grant it used or
    made, and the reason."""
    if decision.get("nobody_to_approve"):
        # Rejected by no one: the reason says which rule left nobody to ask.
        return str(decision.get("reason") or "")
    text = _decided_by(decision)
    if decision.get("status") == "pending":
        text += f" {_quorum(decision)}"
    grant = decision.get("grant")
    # A number names the grant that let this call through; an object is a grant being made.
    if isinstance(grant, int) and not isinstance(grant, bool):
        text += " (approved for this session)"
    elif isinstance(grant, dict):
        conditions = match_conditions(grant.get("match") or {})
        text += ", and for the rest of this session" + (f" when {conditions}" if conditions else "")
    return text + _reason(decision)


def card_text(state: str, latest: dict[str, Any] | None, requested: dict[str, Any]) -> str:
    """An approval card's state line: nothing once decided (each decision is told once, by its
    own line in the card), how many approvals a quorum still waits for, how it ended without a
    decision, else that it waits — for whom, who was told, and until when."""
    if latest is not None and state == "pending":
        missing = int(latest.get("approvals_needed") or 1) - int(latest.get("approvals_given") or 0)
        return f"Waiting for {missing} more approval{'s' if missing != 1 else ''}"
    if latest is not None:
        return ""
    if state == "expired":
        return "Expired"
    if state == "cancelled":
        return "Cancelled"
    return waiting_text(requested)


def waiting_text(requested: dict[str, Any]) -> str:
    """ "Waiting for approval by the group ops (2 needed) · 3 approvers told by e-mail"; the card
    adds when it expires, as a time the page counts down to."""
    group = requested.get("deciders")
    needed = requested.get("approvals_needed") or 1
    text = "Waiting for approval by " + (f"the group {group}" if group else "an approver")
    if needed > 1:
        text += f" ({needed} needed)"
    notified = requested.get("notified")
    if notified:
        text += f" · {notified} approver{'s' if notified != 1 else ''} told by e-mail"
    return text


def rejudged_text(decision: dict[str, Any]) -> str:
    """How an edit's decision names the rule that judged the edited call, and what the request
    needs since (see ``approvals_app.records.Needs.after_edit``); "" for older events."""
    policy = decision.get("policy")
    if not isinstance(policy, dict):
        return ""
    judge = f'The rule "{policy.get("name")}"' if policy.get("rule") else "The tool's default"
    needed = decision.get("approvals_needed")
    needs = f"{needed} approver{'' if needed == 1 else 's'}"
    if decision.get("group"):
        needs += f" from {decision['group']}"
    if decision.get("allow_self_approval") is False:
        needs += ", not the requester"
    return f"{judge} judged the call as edited: it needs {needs}."


# Tools


def _number(value: Any) -> Any:
    """A count as people write it: 1, not 1.0 (MCP reports progress as floats)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def progress_text(data: dict[str, Any]) -> str:
    text = f"Progress {_number(data.get('progress'))}"
    if data.get("total"):
        text += f" of {_number(data['total'])}"
    if data.get("message"):
        text += f": {data['message']}"
    return text
