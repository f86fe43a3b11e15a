"""Why a decision on an approval request, or the run of an approved call, was refused."""

from agentproj.errors import ServiceError


class NotPending(ServiceError):
    code = "not_pending"
    detail = "This approval request has already been decided, cancelled or expired."


class SelfApprovalForbidden(ServiceError):
    code = "self_approval_forbidden"
    detail = "The person who asked for this call may not approve it; another approver must."


class InvalidArguments(ServiceError):
    code = "invalid_arguments"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotEligible(ServiceError):
    code = "not_eligible"
    detail = "Only members of the group the policy names may decide this request."


class GrantNotAllowed(ServiceError):
    code = "grant_not_allowed"
    detail = "A request that needs several approvers cannot be approved for the whole session."


class InvalidGrant(ServiceError):
    code = "invalid_grant"
    detail = "A grant can only match arguments the approved call has."


class ArgumentsChanged(ServiceError):
    code = "arguments_changed"
    detail = "The tool call's arguments differ from the ones that were approved."


class PolicyDenied(ServiceError):
    """An approver edited a call into one a policy rule denies: it may not run as edited."""

    code = "policy_denied"

    def __init__(self, rule_name: str):
        self.detail = (
            f'The policy rule "{rule_name}" denies this call with the edited arguments; '
            "the request still waits for a decision on the arguments as they stand."
        )
        super().__init__(self.detail)
