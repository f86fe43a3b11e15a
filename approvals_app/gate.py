"""What a running turn asks of approvals, and all it may ask: the runtime imports this module and
nothing else of the app.

For each tool call: the policy verdict, a session grant that stands in for a person, and, once
its turn resumes after the people decided, their decision and the claim that lets an approved
call run exactly once. Each is one database read or write, made on the runtime's database
threads; the answers are plain values, so the runtime never holds an approvals row.
"""

from dataclasses import dataclass
from typing import Any

from approvals_app import errors, policies, receipts, records, selectors
from approvals_app.models import ApprovalRequest, ApprovalStatus
from approvals_app.policies import GrantUse, Verdict

__all__ = ["ApprovalGate", "CallDecision", "Claim", "GrantUse", "Verdict"]


@dataclass(frozen=True)
class CallDecision:
    """How the people decided one call of a turn."""

    approval_id: int
    approved: bool
    # Usernames, or None where nobody is named (an expiry, a deleted account).
    decided_by: str | None
    reason: str
    # The arguments an approver changed the call to before approving it, and who.
    edited_arguments: dict[str, Any] | None
    edited_by: str | None

    @classmethod
    def of(cls, request: ApprovalRequest) -> "CallDecision":
        return cls(
            approval_id=request.pk,
            approved=request.status == ApprovalStatus.APPROVED,
            decided_by=request.decided_by.get_username() if request.decided_by else None,
            reason=request.reason,
            edited_arguments=request.edited_arguments,
            edited_by=request.edited_by.get_username() if request.edited_by else None,
        )


@dataclass(frozen=True)
class Claim:
    """The claim of an approved call: the arguments to run it with, or None when it may not run
    (``arguments_changed``: they are not the ones the approvers were shown; else it already ran
    once)."""

    arguments: dict[str, Any] | None
    arguments_changed: bool = False


class ApprovalGate:
    def verdict(
        self,
        *,
        tool_name: str,
        needs_approval: bool,
        arguments: dict[str, Any],
        agent_id: int | None,
    ) -> Verdict:
        return policies.policy_verdict(
            tool_name=tool_name,
            needs_approval=needs_approval,
            arguments=arguments,
            agent_id=agent_id,
        )

    def grant(
        self, *, session_id, tool_name: str, arguments: dict[str, Any], verdict: Verdict
    ) -> GrantUse | None:
        """The session grant that approves this call now, if any."""
        return policies.session_grant_for(
            session_id=session_id, tool_name=tool_name, arguments=arguments, verdict=verdict
        )

    def decisions(self, turn_id: int) -> dict[str, CallDecision]:
        """The decided calls of a turn, by tool call id."""
        return {
            call_id: CallDecision.of(request)
            for call_id, request in selectors.turn_approvals_by_call(turn_id).items()
        }

    def claim(self, *, approval_id: int, requested: dict[str, Any]) -> Claim:
        """Claim an approved call just before it runs (``records.execution_claim``)."""
        try:
            arguments = records.execution_claim(approval_id=approval_id, requested=requested)
        except errors.ArgumentsChanged:
            return Claim(arguments=None, arguments_changed=True)
        return Claim(arguments=arguments)

    def executed(self, *, approval_id: int, result_text: str) -> None:
        """The claimed call ran and the model was given ``result_text``: its receipt's last
        part."""
        records.execution_record(
            approval_id=approval_id, result_sha256=receipts.result_sha256(result_text)
        )
