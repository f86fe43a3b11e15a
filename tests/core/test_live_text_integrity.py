"""A client that follows only the live text (an answer's first streaming event, then the
deltas and the text of checkpoint messages, each written where its text ends) ends with exactly
the stored answer: every piece of text is sent once, none is missing, none repeated."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app import demo_model
from sessions_app.core import lifecycle, sessions
from tests.sockets import session_cookie, session_socket

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_the_deltas_of_an_answer_add_up_to_its_stored_text(llm, user, run_turn_in_thread):
    llm.token_delay = 0.002
    session = sessions.session_create(owner=user)
    cookie = session_cookie(user)

    def start():
        turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
        run_turn_in_thread(turn.pk)
        return turn

    async def scenario():
        communicator = session_socket(session.pk, cookie)
        try:
            accepted, _ = await communicator.connect(timeout=5)
            assert accepted
            await communicator.send_json_to({"type": "resume", "after_seq": 0})
            assert (await communicator.receive_json_from(timeout=5))["type"] == "replayed"
            turn = await database_sync_to_async(start)()
            pieces, final_text, completed = [], None, False
            # Events go out ahead of the deltas a socket still holds (control ahead of text):
            # the last pieces may follow the final text and the turn's end.
            while not completed or sum(len(text) for _, _, text in pieces) < len(final_text):
                message = await communicator.receive_json_from(timeout=30)
                if message["type"] == "delta":
                    delta = message["delta"]
                    pieces.append(("delta", delta["offset"], delta["text"]))
                elif message["type"] == "checkpoint" and "text" in message:
                    pieces.append(("checkpoint", message["offset"], message["text"]))
                if message["type"] != "event":
                    continue
                event = message["event"]
                if event["kind"] == EventKind.ASSISTANT_MESSAGE:
                    if event["data"].get("streaming") and not pieces:
                        pieces.append(("first event", 0, event["data"]["text"]))
                    if not event["data"].get("streaming"):
                        final_text = event["data"]["text"]
                completed = completed or event["data"].get("status") == TurnStatus.COMPLETED
            return turn, pieces
        finally:
            await communicator.disconnect()

    turn, pieces = async_to_sync(scenario)()

    stored = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert stored == demo_model.story_text()
    assert {via for via, _, _ in pieces} >= {"delta", "checkpoint"}
    rebuilt = ""
    for _, offset, text in pieces:
        assert offset == len(rebuilt)
        rebuilt += text
    assert rebuilt == stored
