"""/sessions/ puts the sessions a user is busy with first: ordered by last activity, each row
saying when that was and what the latest message began with, in the same queries however many
sessions there are."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app.core import leases, lifecycle, sessions
from sessions_app.core.selectors import PREVIEW_CHARS
from sessions_app.models import AgentSession
from tests.html_tree import parse
from tests.turn_states import TEST_WORKER, queued_turn

pytestmark = pytest.mark.django_db


def rows(client, user) -> list:
    client.force_login(user)
    page = parse(client.get("/sessions/").content.decode())
    return [row for row in page.by_id("sessions").elements() if "data-session" in row.attrs]


def test_it_lists_the_most_recently_active_session_first(client, user):
    older = sessions.session_create(owner=user, title="Older chat")
    sessions.session_create(owner=user, title="Newer chat")
    lifecycle.turn_start(session=older, message="back to this one", actor=user)

    listed = [row.by_class("session-summary")[0].text.split()[:2] for row in rows(client, user)]

    assert listed == [["Older", "chat"], ["Newer", "chat"]]


def test_a_rename_is_no_activity(client, user):
    renamed = sessions.session_create(owner=user, title="Renamed")
    sessions.session_create(owner=user, title="Untouched")
    sessions.session_rename(session=renamed, title="Renamed later")

    listed = [row.attrs["data-session"] for row in rows(client, user)]

    assert listed[-1] == str(renamed.pk)


def test_each_row_says_when_it_was_last_active(client, user):
    session = sessions.session_create(owner=user, title="Trip")
    lifecycle.turn_start(session=session, message="hello", actor=user)
    session.refresh_from_db()
    assert session.last_activity_at > session.created_at

    (row,) = rows(client, user)
    (time,) = [e for e in row.elements() if e.tag == "time"]

    assert time.attrs["datetime"] == session.last_activity_at.isoformat()
    assert time.text == timezone.localtime(session.last_activity_at).strftime("%Y-%m-%d %H:%M")


def test_each_row_previews_the_latest_message_on_one_line(client, user):
    session = sessions.session_create(owner=user, title="Trip")
    first = lifecycle.turn_start(session=session, message="Plan a trip", actor=user)
    leases.turn_take_lease(turn_id=first.pk, worker_id=TEST_WORKER)
    lifecycle.turn_finalize(turn_id=first.pk, status="completed")
    long_message = "Now   book\nthe hotel " + "x" * 500
    lifecycle.turn_start(session=session, message=long_message, actor=user)
    untitled = sessions.session_create(owner=user)

    by_id = {row.attrs["data-session"]: row for row in rows(client, user)}

    (preview,) = by_id[str(session.pk)].by_class("preview")
    assert preview.text == " ".join(long_message[:PREVIEW_CHARS].split())
    assert by_id[str(untitled.pk)].by_class("preview") == []


def test_a_message_that_named_its_session_is_not_repeated_below_the_title(client, user):
    session = sessions.session_create(owner=user)
    lifecycle.turn_start(session=session, message="What time is it?", actor=user)
    assert AgentSession.objects.get(pk=session.pk).title == "What time is it?"

    (row,) = rows(client, user)

    assert row.by_class("preview") == []


def list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/sessions/").status_code == 200
    return len(queries)


def test_it_costs_the_same_queries_for_3_and_30_sessions(client, settings, user):
    settings.MAX_ACTIVE_TURNS_PER_USER = 100
    client.force_login(user)
    for _ in range(3):
        queued_turn(user)
    few = list_queries(client)

    for _ in range(27):
        queued_turn(user)
    many = list_queries(client)

    assert many == few
