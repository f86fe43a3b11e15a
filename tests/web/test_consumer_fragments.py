"""The session socket sends each event with its fragment, rendered through the page's partials
for the viewer: the approval card's controls for approvers only, the card's new state after a
decision, and the turn to draw an event into when the page has not seen it yet."""

import pytest
from asgiref.sync import async_to_sync

from approvals_app import services as approval_services
from sessions_app.core import lifecycle, sessions
from tests.html_tree import parse
from tests.sockets import resumed_session_socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def replayed(session_id, cookie) -> list[dict]:
    async def scenario():
        async with resumed_session_socket(session_id, cookie) as socket:
            messages = []
            while True:
                message = await socket.receive_json_from(timeout=10)
                if message["type"] == "replayed":
                    return messages
                messages.append(message)

    return async_to_sync(scenario)()


def by_kind(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["event"]["kind"] == kind]


def test_each_event_comes_with_its_fragment_and_turn(user):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello <i>you</i>", actor=user)
    lifecycle.turn_request_cancel(session=session, actor=user)

    messages = replayed(session.pk, session_cookie(user))

    [message] = by_kind(messages, "user_message")
    shell = parse(message["shell"]).by_id(f"turn-{turn.pk}")
    assert shell.by_id(f"turn-{turn.pk}-events").children == []
    item = parse(message["fragment"]).by_id(f"event-{message['event']['seq']}")
    (bubble,) = item.by_class("bubble")
    assert bubble.text == "hello <i>you</i>"
    [notice] = by_kind(messages, "interrupt")
    assert " ".join(parse(notice["fragment"]).text.split()) == "Stopped by the user."
    last_status = by_kind(messages, "status")[-1]
    foot = parse(last_status["fragment"]).by_id(f"turn-{turn.pk}-foot")
    assert foot.attrs["data-status"] == "stopped" and "data-active" not in foot.attrs
    assert [b.text for b in foot.by_class("turn-actions")[0].elements()] == [
        "Edit and resend",
        "Regenerate",
    ]


def card_states(messages: list[dict], element_id: str) -> list:
    """The approval card's state lines the messages redraw, in order."""
    return [
        parse(html).by_id(element_id)
        for message in messages
        for html in message["updates"]
        if f'id="{element_id}"' in html
    ]


def test_approval_cards_and_their_updates_suit_the_viewer(
    user, approver, email_waiting_for_approval
):
    turn, approval = email_waiting_for_approval()
    card_state = f"approval-{approval.pk}-state"
    [requested] = by_kind(replayed(turn.session_id, session_cookie(user)), "approval_requested")
    assert not parse(requested["fragment"]).by_class("approval-actions")

    turn.session.owner = approver
    turn.session.save(update_fields=["owner"])
    messages = replayed(turn.session_id, session_cookie(approver))
    [requested] = by_kind(messages, "approval_requested")
    card = parse(requested["fragment"])
    assert card.by_class("approval-actions") and card.by_class("approve")
    # The card may be decided once its turn waits for approval: that status redraws its state.
    statuses = by_kind(messages, "status")
    [waiting] = [m for m in statuses if m["event"]["data"]["status"] == "waiting_for_approval"]
    assert [s.attrs["data-decidable"] for s in card_states([waiting], card_state)] == ["1"]

    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=True, reason="fine"
    )
    messages = replayed(turn.session_id, session_cookie(approver))
    [decided] = by_kind(messages, "approval_decided")
    assert " ".join(parse(decided["fragment"]).text.split()) == "Approved by carol: fine"
    [state] = card_states([decided], card_state)
    assert (state.attrs["data-state"], state.attrs["data-decidable"]) == ("approved", "0")
    # Who decided, and why, is told once, by the decision's line inside the card, which the
    # message places there; the call's line says it was approved.
    assert state.text == ""
    assert decided["place"] == f"approval-{approval.pk}-decisions"
    lines = [parse(html) for html in decided["updates"] if "tool-line" in html]
    assert [" ".join(line.text.split()) for line in lines] == [
        "send_email — approved by carol, running…"
    ]
    # A replay leaves the card as it stands now, without controls to decide again.
    last = card_states(messages, card_state)[-1]
    assert (last.attrs["data-state"], last.attrs["data-decidable"]) == ("approved", "0")
