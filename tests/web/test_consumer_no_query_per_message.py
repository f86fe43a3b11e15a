"""A page's socket forwards events and token deltas without a database query each: a hundred
streaming answers would otherwise cost the web process a query per token per viewer. (Its
login is re-checked on a timer of its own, made long here so that only per-message queries
could be counted.)"""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.backends import utils

from agentproj.vocabulary import DELTA_MESSAGE_TYPE, EVENT_MESSAGE_TYPE, EventKind
from sessions_app.core import broadcast, leases, selectors, sessions
from tests.sockets import resumed_session_socket, session_cookie
from tests.turn_states import running_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

FORWARDED = 100


@pytest.fixture
def application_queries(monkeypatch):
    """Every statement run on the application's database, from any thread of this process (the
    consumer's database calls run on threads of their own). The embedded channel layer's own
    database is not counted: it is the layer, not the consumer."""
    seen: list[str] = []
    execute, executemany = utils.CursorWrapper.execute, utils.CursorWrapper.executemany

    def counted_execute(self, sql, params=None):
        if self.db.alias == "default":
            seen.append(sql)
        return execute(self, sql, params)

    def counted_executemany(self, sql, param_list):
        if self.db.alias == "default":
            seen.append(sql)
        return executemany(self, sql, param_list)

    monkeypatch.setattr(utils.CursorWrapper, "execute", counted_execute)
    monkeypatch.setattr(utils.CursorWrapper, "executemany", counted_executemany)
    return seen


def test_it_forwards_a_hundred_events_and_deltas_without_a_query(
    user, settings, application_queries
):
    settings.WEBSOCKET_LOGIN_RECHECK_INTERVAL = 3600
    session = sessions.session_create(owner=user, title="No queries")
    turn, lease = running_turn(user, session)
    message = leases.turn_save_progress(
        turn_id=turn.pk, lease_token=lease, assistant_text="Streaming so", streaming=True
    )
    cookie = session_cookie(user)
    checkpoint = next(
        event
        for event in selectors.events_after(session.pk, 0)
        if event["kind"] == EventKind.ASSISTANT_MESSAGE
    )
    group = broadcast.session_group(session.pk)

    async def scenario():
        layer = get_channel_layer()
        async with resumed_session_socket(session.pk, cookie) as socket:
            while (await socket.receive_json_from(timeout=5))["type"] != "replayed":
                pass
            before = len(application_queries)
            text = checkpoint["data"]["text"]
            for _ in range(FORWARDED // 2):
                delta = {"seq": message.seq, "turn": turn.pk, "offset": len(text), "text": " w"}
                text += " w"
                await layer.group_send(group, {"type": DELTA_MESSAGE_TYPE, "delta": delta})
                event = {**checkpoint, "data": {"text": text, "streaming": True}}
                await layer.group_send(group, {"type": EVENT_MESSAGE_TYPE, "event": event})
            # Each checkpoint follows the delta it includes: the page gets that text once,
            # by whichever comes first.
            checkpoints, held = 0, checkpoint["data"]["text"]
            while checkpoints < FORWARDED // 2 or len(held) < len(text):
                received = await socket.receive_json_from(timeout=10)
                part = received if received["type"] == "checkpoint" else received.get("delta")
                checkpoints += received["type"] == "checkpoint"
                if part is not None and "text" in part:
                    assert part["offset"] == len(held)
                    held += part["text"]
            return checkpoints, held, text, application_queries[before:]

    checkpoints, held, text, queries = async_to_sync(scenario)()

    assert checkpoints == FORWARDED // 2
    assert held == text == checkpoint["data"]["text"] + " w" * (FORWARDED // 2)
    assert queries == []
