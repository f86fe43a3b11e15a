"""The embedded channel layer lets a socket join its group while other processes write to the
layer: a page's socket must open and resume under load (the chaos soak saw "database is
locked" at the handshake with channels-lite's own join). Redis has no such lock."""

import threading
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

if "channels" not in settings.DATABASES:
    # channels-lite is not installed when the layer runs on Redis: nothing here to import.
    pytest.skip("the channel layer runs on Redis here", allow_module_level=True)

from channels_lite.models import Event, GroupMembership

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

JOINS = 300


def test_sockets_join_their_groups_while_others_write_to_the_layer():
    layer = channel_layers.make_backend("default")
    writing = threading.Event()
    done = threading.Event()

    def write_messages():
        # Another process's sends and polls: short write transactions, one after another.
        try:
            while not done.is_set():
                with transaction.atomic(using="channels"):
                    Event.objects.create(
                        channel_name="elsewhere", data=b"x", expires_at=timezone.now()
                    )
                    writing.set()
        finally:
            connections["channels"].close()

    writer = threading.Thread(target=write_messages)
    writer.start()
    failures = []
    try:
        assert writing.wait(10)
        for index in range(JOINS):
            channel = f"specific.{uuid.uuid4().hex}!{index}"
            try:
                async_to_sync(layer.group_add)(f"session.{index % 7}", channel)
            except Exception as exc:
                failures.append(repr(exc))
    finally:
        done.set()
        writer.join(30)
    assert not writer.is_alive()
    assert failures == []
    assert GroupMembership.objects.count() == JOINS
