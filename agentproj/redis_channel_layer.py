"""The scale-out channel layer: channels-redis, made to carry a hundred live streams.

channels-redis reads a process's own channel (every socket of a daphne process shares it) one
message at a time, with four round trips to Redis each: a clean-up script, the blocking pop, a
backup copy and its removal. At a hundred streaming turns that was more than a daphne process
could do, and live text fell seconds behind (``bench/concurrency.py``). Here a read of the
process channel waits for one message and takes whatever else is already there with it.

The backup copy guards a message against a reader cancelled between its pop and its use; on a
process channel that happens only when the process is closing its sockets, and the messages
there are live ones a reconnecting page replays from the database, so the batch does without.

And a turn host's outbox writes its batches of group messages with ``group_send_many``: two
round trips for the whole batch instead of four per message.
"""

import logging
import time

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

RECEIVE_BATCH = 200


class BatchingRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fetched: dict[str, list[bytes]] = {}

    async def receive_single(self, channel):
        if "!" not in channel:
            return await super().receive_single(channel)
        fetched = self._fetched.get(channel)
        if not fetched:
            fetched = await self._fetch_batch(channel)
            self._fetched[channel] = fetched
        message = self.deserialize(fetched.pop(0))
        return message.pop("__asgi_channel__", channel), message

    async def _fetch_batch(self, channel: str) -> list[bytes]:
        connection = self.connection(self.consistent_hash(channel))
        key = self.prefix + channel
        while True:
            first = await connection.bzpopmin(key, timeout=self.brpop_timeout)
            if first is not None:
                break
        rest = await connection.zpopmin(key, RECEIVE_BATCH - 1)
        return [first[1]] + [member for member, _score in rest]

    async def group_send_many(self, batch: list[tuple[str, dict]]) -> None:
        """Send a batch of group messages in two round trips to Redis, in order per channel.

        channels-redis sends one group message in four round trips (expire old members, read
        them, expire old messages, the capacity-checked write). A turn host's outbox sends the
        deltas and events of all its turns in batches: here one pipeline reads every group's
        members and one script writes every message, each channel's in the order of the batch
        (increasing scores), dropping those beyond a channel's capacity as ``group_send`` does.
        With several Redis hosts (sharding) it sends them one by one.
        """
        if self.ring_size != 1:
            for group, message in batch:
                await self.group_send(group, message)
            return
        connection = self.connection(0)
        now = time.time()
        groups = list(dict.fromkeys(group for group, _ in batch))
        read = connection.pipeline()
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            key = self._group_key(group)
            read.zremrangebyscore(key, min=0, max=int(now) - self.group_expiry)
            read.zrange(key, 0, -1)
        replies = await read.execute()
        members = {
            group: [name.decode("utf8") for name in replies[2 * index + 1]]
            for index, group in enumerate(groups)
        }
        by_key: dict[str, list[bytes]] = {}
        capacity: dict[str, int] = {}
        for group, message in batch:
            channels_of_key: dict[str, list[str]] = {}
            for channel in members[group]:
                key = self.prefix + (self.non_local_name(channel) if "!" in channel else channel)
                channels_of_key.setdefault(key, []).append(channel)
                capacity.setdefault(key, self.get_capacity(channel))
            for key, channels in channels_of_key.items():
                body = dict(message, __asgi_channel__=channels)
                by_key.setdefault(key, []).append(self.serialize(body))
        if not by_key:
            return
        keys = list(by_key)
        arguments: list = [now, self.expiry]
        for key in keys:
            arguments += [len(by_key[key]), capacity[key], *by_key[key]]
        dropped = await connection.eval(_SEND_MANY, len(keys), *keys, *arguments)
        if dropped:
            logger.info("%s group messages over channel capacity were dropped", dropped)


# KEYS: the channels' keys. ARGV: now, expiry, then per key its message count, its capacity and
# its messages. Scores grow by a microsecond per message so that a channel reads them in order.
_SEND_MANY = """
local now = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local at = 3
local dropped = 0
for i = 1, #KEYS do
    local count = tonumber(ARGV[at])
    local room = tonumber(ARGV[at + 1])
    at = at + 2
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(now) - expiry)
    room = room - redis.call('ZCOUNT', KEYS[i], '-inf', '+inf')
    for j = 0, count - 1 do
        if j < room then
            redis.call('ZADD', KEYS[i], now + j * 0.000001, ARGV[at + j])
        else
            dropped = dropped + 1
        end
    end
    at = at + count
    redis.call('EXPIRE', KEYS[i], expiry)
end
return dropped
"""
