"""Whatever a logged-in user sends over the session socket, the consumer answers with an error
message and stays up: no crash (close 1011), no traceback in the log."""

import logging

import pytest
from asgiref.sync import async_to_sync

from sessions_app.core import sessions
from tests.sockets import queue_socket, session_cookie, session_socket

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MALFORMED_TEXT = [
    "hello",
    "[1,2]",
    '"resume"',
    "null",
    "{}",
    '{"type": "subscribe"}',
    '{"type": "resume", "after_seq": Infinity}',
    '{"type": "resume", "after_seq": NaN}',
    '{"type": "resume", "after_seq": -1}',
    '{"type": "resume", "after_seq": 1.5}',
    '{"type": "resume", "after_seq": "3"}',
    '{"type": "resume", "after_seq": true}',
    '{"type": "resume", "after_seq": 1e400}',
    '{"type": "resume", "after_seq": 100000000000000000000000000}',
    "[" * 100_000,
    '{"type": "resume", "pad": "' + "x" * 5000 + '"}',
]


def test_it_answers_every_malformed_frame_with_an_error_and_keeps_the_socket(user, caplog):
    session = sessions.session_create(owner=user)
    cookie = session_cookie(user)

    async def scenario():
        communicator = session_socket(session.pk, cookie)
        try:
            accepted, _ = await communicator.connect(timeout=5)
            assert accepted
            answers = []
            for frame in MALFORMED_TEXT:
                await communicator.send_to(text_data=frame)
                answers.append(await communicator.receive_json_from(timeout=5))
            await communicator.send_to(bytes_data=b"\x00\x01resume")
            answers.append(await communicator.receive_json_from(timeout=5))
            # Still up, and still works.
            await communicator.send_json_to({"type": "resume", "after_seq": 0})
            replayed = await communicator.receive_json_from(timeout=5)
            return answers, replayed
        finally:
            await communicator.disconnect()

    with caplog.at_level(logging.WARNING):
        answers, replayed = async_to_sync(scenario)()

    assert len(answers) == len(MALFORMED_TEXT) + 1
    for answer in answers:
        assert answer["type"] == "error" and answer["code"] == "invalid_message", answer
        assert isinstance(answer["detail"], str) and answer["detail"]
        assert "Traceback" not in answer["detail"] and "Error" not in answer["detail"]
    assert replayed == {"type": "replayed", "last_seq": 0}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_it_takes_no_messages_on_the_approval_queue_socket(approver, caplog):
    cookie = session_cookie(approver)

    async def scenario():
        socket = queue_socket(cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            answers = []
            for frame in ("hello", '{"type": "resume"}'):
                await socket.send_to(text_data=frame)
                answers.append(await socket.receive_json_from(timeout=5))
            await socket.send_to(bytes_data=b"\xff")
            answers.append(await socket.receive_json_from(timeout=5))
            return answers
        finally:
            await socket.disconnect()

    with caplog.at_level(logging.WARNING):
        answers = async_to_sync(scenario)()

    assert [a["code"] for a in answers] == ["invalid_message"] * 3
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
