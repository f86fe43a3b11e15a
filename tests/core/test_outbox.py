"""A host's outbox joins a turn's consecutive deltas when the channel layer falls behind, and
never changes the order of a session's messages."""

from agentproj.vocabulary import DELTA_MESSAGE_TYPE, EVENT_MESSAGE_TYPE
from sessions_app.core.broadcast import coalesce_deltas


def delta(seq: int, offset: int, text: str) -> dict:
    return {
        "type": DELTA_MESSAGE_TYPE,
        "delta": {"seq": seq, "turn": 1, "offset": offset, "text": text},
    }


def event(seq: int) -> dict:
    return {"type": EVENT_MESSAGE_TYPE, "event": {"seq": seq}}


def test_it_joins_consecutive_deltas_of_a_message():
    batch = [("a", delta(3, 0, "Once ")), ("a", delta(3, 5, "upon ")), ("a", delta(3, 10, "a"))]

    assert coalesce_deltas(batch) == [("a", delta(3, 0, "Once upon a"))]


def test_it_keeps_each_session_in_order_around_events():
    batch = [
        ("a", delta(3, 0, "Once ")),
        ("b", delta(7, 0, "Hi")),
        ("a", event(3)),
        ("a", delta(3, 5, "upon")),
        ("b", delta(7, 2, " there")),
    ]

    assert coalesce_deltas(batch) == [
        ("a", delta(3, 0, "Once ")),
        ("b", delta(7, 0, "Hi there")),
        ("a", event(3)),
        ("a", delta(3, 5, "upon")),
    ]


def test_it_does_not_join_deltas_that_do_not_follow_each_other():
    batch = [("a", delta(3, 0, "Once ")), ("a", delta(4, 0, "Next")), ("a", delta(4, 9, "gap"))]

    assert coalesce_deltas(batch) == batch
