"""A host checkpoints the streaming text of all its turns in one write: each turn's text lands
in its own message, a turn whose lease is gone is refused, and an ended message keeps its end."""

import pytest

from agentproj.vocabulary import EventKind
from sessions_app.core import leases
from tests.turn_states import running_turn

pytestmark = pytest.mark.django_db


def streaming_message(user, text: str):
    turn, lease = running_turn(user)
    event = leases.turn_save_progress(
        turn_id=turn.pk, lease_token=lease, assistant_text=text, streaming=True
    )
    return turn, lease, event


def checkpoint(turn, lease, event, text: str) -> leases.TextCheckpoint:
    return leases.TextCheckpoint(turn_id=turn.pk, lease_token=lease, event_id=event.pk, text=text)


def message_data(turn) -> dict:
    return turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data


def test_it_writes_the_text_of_every_turn_at_once(user):
    first, second = streaming_message(user, "Once"), streaming_message(user, "In a")

    lost = leases.turns_save_streaming_text(
        checkpoints=[
            checkpoint(*first, "Once upon"),
            checkpoint(*second, "In a land far"),
        ]
    )

    assert lost == set()
    assert message_data(first[0]) == {"text": "Once upon", "streaming": True}
    assert message_data(second[0]) == {"text": "In a land far", "streaming": True}


def test_it_refuses_a_turn_whose_lease_is_gone_and_writes_the_others(user):
    kept, taken_over = streaming_message(user, "Once"), streaming_message(user, "In a")
    turn, lease, _ = taken_over
    assert leases.turn_requeue(turn_id=turn.pk, lease_token=lease)

    lost = leases.turns_save_streaming_text(
        checkpoints=[checkpoint(*kept, "Once upon"), checkpoint(*taken_over, "stale text")]
    )

    assert lost == {turn.pk}
    assert message_data(kept[0])["text"] == "Once upon"
    assert message_data(turn)["text"] == "In a"


def test_it_never_reopens_a_message_that_has_ended(user):
    turn, lease, event = streaming_message(user, "Once")
    leases.turn_save_progress(
        turn_id=turn.pk,
        lease_token=lease,
        assistant_event_id=event.pk,
        assistant_text="Once upon a time.",
        streaming=False,
    )

    leases.turns_save_streaming_text(checkpoints=[checkpoint(turn, lease, event, "Once upon")])

    assert message_data(turn) == {"text": "Once upon a time.", "streaming": False}
