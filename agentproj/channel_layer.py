"""The embedded channel layer: channels-lite, made to carry a hundred live streams.

channels-lite moves messages through a SQLite table. As shipped, a process pulls one message per
query from its poll loop, and every group message costs a membership query and a capacity count
per receiver. Two additions, measured with ``bench/concurrency.py``:
- a process-specific poll fetches up to ``RECEIVE_BATCH`` messages at once (only this process
  reads those channels, so marking the batch delivered in one statement cannot steal another
  reader's message);
- ``group_send_many`` writes a batch of group messages with one membership query and one insert,
  which a turn host's outbox uses for the deltas and events of all its turns.
And one fix: joining a group is one upsert statement (see ``group_add``).
"""

from datetime import timedelta

from asgiref.sync import sync_to_async
from channels_lite.layers import ChannelEmpty
from channels_lite.layers.core import SQLiteChannelLayer
from channels_lite.models import Event, GroupMembership
from django.utils import timezone

RECEIVE_BATCH = 200


class BatchingSQLiteChannelLayer(SQLiteChannelLayer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._fetched: dict[str, list[tuple[str, dict]]] = {}

    async def _receive_single_from_db(self, channel):
        if "!" not in channel:
            return await super()._receive_single_from_db(channel)
        fetched = self._fetched.get(channel)
        if not fetched:
            fetched = await self._fetch_batch(channel)
            if not fetched:
                raise ChannelEmpty()
            self._fetched[channel] = fetched
        return fetched.pop(0)

    @sync_to_async
    def _fetch_batch(self, prefix: str) -> list[tuple[str, dict]]:
        rows = list(
            Event.objects.filter(
                channel_name=prefix, delivered=False, expires_at__gte=timezone.now()
            )
            .order_by("expires_at", "id")
            .values_list("id", "data")[:RECEIVE_BATCH]
        )
        if not rows:
            return []
        Event.objects.filter(id__in=[row_id for row_id, _ in rows]).update(delivered=True)
        batch = []
        for _, data in rows:
            message = self.deserialize(data)
            batch.append((self._extract_message_channel(message, prefix), message))
        return batch

    async def group_add(self, group, channel):
        """Join a group in one statement. channels-lite's ``update_or_create`` reads, then
        writes, in one deferred SQLite transaction; when another process writes in between,
        the upgrade to a write fails at once with "database is locked" (SQLite cannot wait
        there), and the page's socket failed to open or to resume (the chaos soak saw 500s at
        the handshake and 1011 closes). A single write statement waits for the lock instead."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._join(group, channel)

    @sync_to_async
    def _join(self, group: str, channel: str) -> None:
        membership = GroupMembership(
            group_name=group,
            channel_name=channel,
            expires_at=timezone.now() + timedelta(seconds=self.group_expiry),
        )
        GroupMembership.objects.bulk_create(
            [membership],
            update_conflicts=True,
            unique_fields=["group_name", "channel_name"],
            update_fields=["expires_at"],
        )

    async def group_send_many(self, batch: list[tuple[str, dict]]) -> None:
        await self._write_group_messages(batch)

    @sync_to_async
    def _write_group_messages(self, batch: list[tuple[str, dict]]) -> None:
        now = timezone.now()
        members: dict[str, list[str]] = {}
        for group, channel in GroupMembership.objects.filter(
            group_name__in={group for group, _ in batch}, expires_at__gte=now
        ).values_list("group_name", "channel_name"):
            members.setdefault(group, []).append(channel)
        expires_at = now + timedelta(seconds=self.expiry)
        rows = []
        for group, message in batch:
            for channel in members.get(group, ()):
                addressed = dict(message)
                target = channel
                if "!" in channel:
                    addressed["__asgi_channel__"] = channel
                    target = self.non_local_name(channel)
                rows.append(
                    Event(
                        channel_name=target, data=self.serialize(addressed), expires_at=expires_at
                    )
                )
        if rows:
            Event.objects.bulk_create(rows)
