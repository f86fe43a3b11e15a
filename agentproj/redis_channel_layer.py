"""The scale-out channel layer: channels-redis, made to carry a hundred live streams.

channels-redis reads a process's own channel (every socket of a daphne process shares it) one
message at a time, with four round trips to Redis each: a clean-up script, the blocking pop, a
backup copy and its removal. At a hundred streaming turns that was more than a daphne process
could do, and live text fell seconds behind (``bench/concurrency.py``). Here a read of the
process channel waits for one message and takes whatever else is already there with it.

The backup copy guards a message against a reader cancelled between its pop and its use; on a
process channel that happens only when the process is closing its sockets, and the messages
there are live ones a reconnecting page replays from the database, so the batch does without.
"""

from channels_redis.core import RedisChannelLayer

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
