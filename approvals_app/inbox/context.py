"""The header's "Approvals" link and its count, on every page an approver sees."""

from approvals_app import services
from approvals_app.inbox.render import inbox_count


def approvals_waiting(request) -> dict:
    """One count query for an approver (the permission check reads what Django caches on the
    user for the request); nothing for anyone else. Lazy: a page whose template never shows the
    header pays nothing."""
    user = getattr(request, "user", None)
    if user is None or not services.can_decide(user):
        return {}
    return {"approvals_waiting": _Count(user)}


class _Count:
    def __init__(self, user):
        self.user = user
        self.value: int | None = None

    def __int__(self) -> int:
        if self.value is None:
            self.value = inbox_count(self.user)
        return self.value

    def __str__(self) -> str:
        return str(int(self))
