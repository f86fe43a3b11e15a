"""django-q2 tasks of approvals. Like views, they take ids and call the code that does the work."""

from approvals_app import notifications
from approvals_app.integrations import slack, slack_presses


def notify(approval_id: int, status: str, approver_ids: list[int] | None = None) -> str:
    """Queued by ``notifications.notify_on_commit`` when a request becomes ``status`` (or is
    escalated to ``approver_ids``)."""
    return notifications.approval_notify(
        approval_id=approval_id, status=status, approver_ids=approver_ids
    )


def notify_prepared(notice: notifications.Notice) -> str:
    """Queued by ``notifications.notify_withdrawn_on_commit``: the notice was read already."""
    return notifications.notice_send(notice)


def slack_sync(approval_id: int) -> str:
    """Queued by ``notifications.slack_sync_on_commit``: post or update the Slack message."""
    return slack.message_sync(approval_id=approval_id)


def slack_withdrawn(channel: str, ts: str, text: str) -> str:
    """Queued by ``notifications.notify_withdrawn_on_commit``: the request is gone with its
    session, so its message is told what to say."""
    return slack.message_replace(channel=channel, ts=ts, text=text)


def slack_press(press: slack_presses.Press) -> str:
    """Queued by the Slack interactions view for a verified button press."""
    return slack_presses.press_handle(press)
