"""The inbox's socket (``ws/approvals/inbox/``): an approver's open inbox, kept current.

It joins the approvers' group (``broadcast.APPROVAL_QUEUE_GROUP``, told of every request made,
decided, cancelled, expired), then sends the list as it stands, so that nothing falls between
the page's drawing and the join. Each change sends the user's list again, re-read and re-drawn
for them alone (groups, visibility), with what became of the requests that left it:
``{"type": "inbox", "count", "items": [{"id", "html"}], "left": [{"id", "text"}]}``.
"""

from channels.db import database_sync_to_async

from agentproj.vocabulary import CloseCode
from approvals_app import notifications, services
from approvals_app.inbox.render import inbox_count, inbox_items
from approvals_app.models import ApprovalRequest
from sessions_app.core import broadcast
from sessions_app.web.consumers import LoginBoundConsumer


class InboxConsumer(LoginBoundConsumer):
    anonymous_code = CloseCode.NOT_ALLOWED
    joined_group = False

    async def may_watch(self, user) -> int | None:
        allowed = await database_sync_to_async(services.can_decide)(user)
        return None if allowed else CloseCode.NOT_ALLOWED

    async def joined(self) -> None:
        await self.channel_layer.group_add(broadcast.APPROVAL_QUEUE_GROUP, self.channel_name)
        self.joined_group = True
        self.shown: set[int] = set()

    async def connect(self):
        await super().connect()
        if self.joined_group:
            await self.send_inbox()

    async def disconnect(self, code):
        if self.joined_group:
            await self.channel_layer.group_discard(
                broadcast.APPROVAL_QUEUE_GROUP, self.channel_name
            )
        await super().disconnect(code)

    async def approvals_changed(self, message):
        if await self.still_allowed():
            await self.send_inbox()

    async def send_inbox(self) -> None:
        message = await database_sync_to_async(inbox_message)(self.user, self.shown)
        self.shown = {item["id"] for item in message["items"]}
        await self.send_json(message)


def inbox_message(user, shown: set[int]) -> dict:
    items = [{"id": item.approval_id, "html": str(item.html)} for item in inbox_items(user)]
    gone = shown - {item["id"] for item in items}
    return {
        "type": "inbox",
        "count": inbox_count(user),
        "items": items,
        "left": [{"id": pk, "text": outcome(pk)} for pk in sorted(gone)],
    }


def outcome(approval_id: int) -> str:
    """What became of a request that left the inbox, as its e-mails say it."""
    approval = (
        ApprovalRequest.objects.select_related("turn__session__owner", "decided_by")
        .filter(pk=approval_id)
        .first()
    )
    if approval is None:
        return f"Request {approval_id} was withdrawn: its conversation was deleted."
    if approval.is_pending:
        return f"Request {approval_id} can no longer be decided here."
    return notifications.summary(approval)
