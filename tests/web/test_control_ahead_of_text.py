"""A Stop reaches a page ahead of the token deltas queued before it: a socket that falls behind
a streaming answer (a hundred of them share the web process) sends its events the moment they
arrive and its deltas together, joined, so the `stopped` status never waits behind text. The
page still ends with the stored text: the final message carries it."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from agentproj.vocabulary import DELTA_MESSAGE_TYPE, EVENT_MESSAGE_TYPE, EventKind, TurnStatus
from sessions_app.core import broadcast, events, leases, lifecycle, selectors, sessions
from sessions_app.models import TimelineEvent
from tests.sockets import resumed_session_socket, session_cookie
from tests.turn_states import running_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Queued for the socket at once, ahead of the stop; within the layer's capacity per channel
# (1,000), beyond which the layer itself would drop messages.
BACKLOG = 900
WORD = " word"


def test_the_stopped_status_overtakes_a_backlog_of_deltas_and_the_page_ends_with_the_text(user):
    session = sessions.session_create(owner=user, title="Control first")
    turn, lease = running_turn(user, session)
    message = leases.turn_save_progress(
        turn_id=turn.pk, lease_token=lease, assistant_text="Once", streaming=True
    )
    before_stop = session.events.order_by("-seq").values_list("seq", flat=True).first()
    # The stop and the turn's end are written first; their events are put behind the backlog
    # below, as the socket would have them had the worker's deltas queued up meanwhile.
    lifecycle.turn_request_cancel(session=session, actor=user)
    streamed = "Once" + WORD * BACKLOG
    lifecycle.turn_finalize(
        turn_id=turn.pk,
        status=TurnStatus.STOPPED,
        lease_token=lease,
        partial_text=streamed,
        assistant_event_id=message.pk,
    )
    # As the stop wrote them: the stopping status and the notice, the final text, the end.
    *stopping, stopped = selectors.events_after(session.pk, before_stop)
    final_text = events.serialize_event(TimelineEvent.objects.get(pk=message.pk))
    stop_events = [*stopping, final_text, stopped]
    cookie = session_cookie(user)
    group = broadcast.session_group(session.pk)
    backlog = [
        (
            group,
            {
                "type": DELTA_MESSAGE_TYPE,
                "delta": {
                    "seq": message.seq,
                    "turn": turn.pk,
                    "offset": len("Once") + number * len(WORD),
                    "text": WORD,
                },
            },
        )
        for number in range(BACKLOG)
    ] + [(group, {"type": EVENT_MESSAGE_TYPE, "event": event}) for event in stop_events]

    async def scenario():
        async with resumed_session_socket(session.pk, cookie, after_seq=10**6) as socket:
            assert (await socket.receive_json_from(timeout=5))["type"] == "replayed"
            await broadcast._group_send_many(get_channel_layer(), backlog)
            received = []
            while not any(frame.get("event") == stopped for frame in received):
                received.append(await socket.receive_json_from(timeout=20))
            return received

    received = async_to_sync(scenario)()

    stopped_at = next(
        index
        for index, frame in enumerate(received)
        if frame["type"] == "event"
        and frame["event"]["kind"] == EventKind.STATUS
        and frame["event"]["data"]["status"] == TurnStatus.STOPPED
    )
    deltas_before_stop = [frame for frame in received[:stopped_at] if frame["type"] == "delta"]
    # Not the backlog one by one: at most a tenth of it passed ahead of the stop, joined.
    assert len(deltas_before_stop) <= BACKLOG // 10
    final = next(
        frame["event"]
        for frame in received
        if frame["type"] == "event" and frame["event"]["kind"] == EventKind.ASSISTANT_MESSAGE
    )
    stored = TimelineEvent.objects.get(pk=message.pk).data
    assert final["data"] == stored == {"text": streamed, "streaming": False}
