"""A turn host's outbox writes its batches of group messages in one go (``group_send_many``, on
both layers): every member of each group gets that group's messages, each channel in the
batch's order, two sockets of one process included, and a group with no member costs nothing."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_a_batch_reaches_every_member_of_each_group_in_order():
    layer = channel_layers.make_backend("default")

    async def scenario():
        # Two sockets of this process (one key on Redis) and a channel of a host.
        first = await layer.new_channel()
        second = await layer.new_channel()
        host = "turn-host.send-many-test"
        await layer.group_add("session.one", first)
        await layer.group_add("session.one", second)
        await layer.group_add("session.two", second)
        await layer.group_add("hosts", host)
        batch = []
        for number in range(60):
            batch.append(("session.one", {"type": "one", "n": number}))
            if number % 3 == 0:
                batch.append(("session.two", {"type": "two", "n": number}))
            if number % 20 == 0:
                batch.append(("hosts", {"type": "host", "n": number}))
        batch.append(("nobody.listens", {"type": "lost", "n": 0}))
        await layer.group_send_many(batch)

        async def read(channel: str, count: int) -> list[tuple[str, int]]:
            return [
                ((message := await layer.receive(channel))["type"], message["n"])
                for _ in range(count)
            ]

        return await read(first, 60), await read(second, 80), await read(host, 3)

    first, second, host = async_to_sync(scenario)()

    assert first == [("one", n) for n in range(60)]
    expected_second = []
    for number in range(60):
        expected_second.append(("one", number))
        if number % 3 == 0:
            expected_second.append(("two", number))
    assert second == expected_second
    assert host == [("host", 0), ("host", 20), ("host", 40)]
