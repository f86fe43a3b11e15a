"""The session list's socket (``ws/sessions/``) keeps an open list current: a session's row
re-rendered when its status or title changes, its removal when it is deleted; and a session's
own socket tells its page the title that the first message or a rename gave it."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from sessions_app.core import leases, lifecycle, sessions
from sessions_app.models import AgentSession
from tests.sockets import list_socket, resumed_session_socket, session_cookie
from tests.turn_states import TEST_WORKER

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def rows_while(user, *actions):
    """What an open list receives, one message per action, as each action runs in turn."""
    cookie = session_cookie(user)

    async def scenario():
        socket = list_socket(cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            received = []
            for action, messages in actions:
                await database_sync_to_async(action)()
                received.append(
                    [await socket.receive_json_from(timeout=10) for _ in range(messages)]
                )
            return received
        finally:
            await socket.disconnect()

    return async_to_sync(scenario)()


def status_in(html: str) -> str:
    return html.split('data-status="', 1)[1].split('"', 1)[0]


def test_it_updates_a_rows_status_as_its_turn_changes(user):
    session = sessions.session_create(owner=user, title="Story time")
    turn_ids = []

    def start():
        turn_ids.append(lifecycle.turn_start(session=session, message="hi", actor=user).pk)

    def stop():
        leases.turn_take_lease(turn_id=turn_ids[0], worker_id=TEST_WORKER)
        lifecycle.turn_finalize(turn_id=turn_ids[0], status="completed")

    started, stopped = rows_while(user, (start, 1), (stop, 2))

    (row,) = started
    assert row["type"] == "row" and row["session"] == str(session.pk)
    assert status_in(row["html"]) == "running" and ">Running<" in row["html"]
    assert f'id="session-{session.pk}"' in row["html"] and "Story time" in row["html"]
    # A row is rendered as the session is when the list is told, so the last one is current.
    assert {m["session"] for m in stopped} == {str(session.pk)}
    assert status_in(stopped[-1]["html"]) == "idle" and ">Idle<" in stopped[-1]["html"]


def test_it_replaces_a_renamed_row_and_removes_a_deleted_one(user):
    session = sessions.session_create(owner=user, title="Old")

    renamed, deleted = rows_while(
        user,
        (lambda: sessions.session_rename(session=session, title="New"), 1),
        (lambda: sessions.session_delete(session=session, actor=user), 1),
    )

    assert renamed[0]["type"] == "row" and ">New</a>" in renamed[0]["html"]
    assert deleted == [{"type": "removed", "session": str(session.pk)}]


def test_it_tells_no_one_else_of_a_users_sessions(user, other_user):
    theirs = sessions.session_create(owner=other_user, title="Bob's")
    mine = sessions.session_create(owner=user, title="Mine")

    (told,) = rows_while(
        user,
        (
            lambda: (
                sessions.session_rename(session=theirs, title="Bob's new"),
                sessions.session_rename(session=mine, title="Mine, renamed"),
            ),
            1,
        ),
    )

    assert told[0]["session"] == str(mine.pk)


def test_the_session_page_learns_its_title_from_the_first_message_and_a_rename(user):
    session = sessions.session_create(owner=user)
    cookie = session_cookie(user)

    async def scenario():
        async with resumed_session_socket(session.pk, cookie) as socket:
            assert (await socket.receive_json_from(timeout=5))["type"] == "replayed"
            await database_sync_to_async(lifecycle.turn_start)(
                session=session, message="Plan a trip to Lisbon\nin May", actor=user
            )
            seen = [await socket.receive_json_from(timeout=10) for _ in range(3)]
            await database_sync_to_async(sessions.session_rename)(session=session, title="")
            seen.append(await socket.receive_json_from(timeout=10))
            return seen

    seen = async_to_sync(scenario)()

    assert [m["type"] for m in seen] == ["event", "event", "session", "session"]
    assert seen[2] == {
        "type": "session",
        "title": "Plan a trip to Lisbon",
        "html": '<h1 id="session-title">Plan a trip to Lisbon</h1>\n',
    }
    session = AgentSession.objects.get(pk=session.pk)
    assert seen[3]["title"] == ""
    assert seen[3]["html"] == '<h1 id="session-title">New chat</h1>\n'


def test_a_session_made_elsewhere_appears_in_an_open_list(user, other_user):
    made = []

    def create_two():
        sessions.session_create(owner=other_user, title="Not mine")
        made.append(sessions.session_create(owner=user, title="Made in another tab"))

    ((row,),) = rows_while(user, (create_two, 1))

    assert row["type"] == "row" and row["session"] == str(made[0].pk)
    assert "Made in another tab" in row["html"] and status_in(row["html"]) == "idle"


def test_a_page_watching_a_deleted_session_sees_its_stop_then_that_it_is_gone(user, settings):
    # Every message re-checks the login and the session: the check of the stop's events runs
    # after the deletion took the rows, as it does whenever the page last checked long ago.
    settings.WEBSOCKET_LOGIN_RECHECK_INTERVAL = 0
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="a long story", actor=user)
    cookie = session_cookie(user)

    async def scenario():
        async with resumed_session_socket(session.pk, cookie) as socket:
            while (await socket.receive_json_from(timeout=5))["type"] != "replayed":
                pass
            await database_sync_to_async(sessions.session_delete)(session=session, actor=user)
            seen = []
            while not seen or seen[-1]["type"] != "session_deleted":
                seen.append(await socket.receive_json_from(timeout=10))
            return seen, await socket.receive_output(timeout=5)

    seen, closed = async_to_sync(scenario)()

    kinds = [m["event"]["kind"] for m in seen if m["type"] == "event"]
    assert kinds.count("interrupt") == 1
    stopped = [m for m in seen if m["type"] == "event" and m["event"]["kind"] == "status"]
    assert stopped[-1]["event"]["data"]["status"] == "stopped"
    assert stopped[-1]["event"]["turn"] == turn.pk
    assert seen[-1] == {"type": "session_deleted"}
    assert closed == {"type": "websocket.close", "code": 4404}
