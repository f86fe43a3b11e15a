"""django-q2 tasks of approvals. Like views, they take ids and call the code that does the work."""

from approvals_app import notifications


def notify(approval_id: int, status: str, approver_ids: list[int] | None = None) -> str:
    """Queued by ``notifications.notify_on_commit`` when a request becomes ``status`` (or is
    escalated to ``approver_ids``)."""
    return notifications.approval_notify(
        approval_id=approval_id, status=status, approver_ids=approver_ids
    )


def notify_prepared(notice: notifications.Notice) -> str:
    """Queued by ``notifications.notify_withdrawn_on_commit``: the notice was read already."""
    return notifications.notice_send(notice)
