"""Websocket consumers. Thin: authenticate, join a group, replay, forward.

A client sends ``{"type": "resume", "after_seq": N}``; the consumer joins the session's group
first and then replays the persisted events after N, so no event can fall between the two. The
page de-duplicates by ``seq``.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from approvals_app.services import can_decide

from . import events, selectors

# Long sessions replay in batches, so one resume never loads the whole timeline at once.
REPLAY_BATCH = 500


class SessionConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.group = None
        user = self.scope.get("user")
        session_id = self.scope["url_route"]["kwargs"]["session_id"]
        if not user or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await database_sync_to_async(selectors.user_owns_session)(user, session_id):
            await self.close(code=4404)
            return
        self.session_id = session_id
        self.user = user
        self.group = events.session_group(session_id)
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") != "resume":
            return
        try:
            after = max(0, int(content.get("after_seq") or 0))
        except (TypeError, ValueError):
            after = 0
        await self.channel_layer.group_add(self.group, self.channel_name)
        while True:
            batch = await database_sync_to_async(selectors.events_after)(
                self.session_id, after, limit=REPLAY_BATCH
            )
            for event in batch:
                await self.send_json({"type": "event", "event": event})
            if batch:
                after = batch[-1]["seq"]
            if len(batch) < REPLAY_BATCH:
                break
        await self.send_json({"type": "replayed", "last_seq": after})

    async def timeline_event(self, message):
        await self.send_json({"type": "event", "event": message["event"]})

    async def timeline_delta(self, message):
        await self.send_json({"type": "delta", "delta": message["delta"]})


class ApprovalQueueConsumer(AsyncJsonWebsocketConsumer):
    """Tells an open admin approval queue that it changed; the page then refreshes its list."""

    async def connect(self):
        user = self.scope.get("user")
        if (
            not user
            or not user.is_authenticated
            or not await database_sync_to_async(can_decide)(user)
        ):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(events.APPROVAL_QUEUE_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(events.APPROVAL_QUEUE_GROUP, self.channel_name)

    async def approvals_changed(self, message):
        await self.send_json({"type": "changed"})
