"""One user cannot take the service for themself: sessions created, renamed and deleted, timeline
reads and socket replays are rate-limited per user (429 with a code, on the API and the pages
alike); their open sockets and their active turns are capped; the session list costs the same
few queries however many sessions there are; and no authenticated answer may be stored by a
cache."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agentproj.vocabulary import CloseCode, TurnStatus
from sessions_app.core import errors, lifecycle, sockets
from sessions_app.core.selectors import SESSIONS_PER_PAGE
from sessions_app.models import AgentSession, OpenSocket, Turn
from tests.sockets import session_cookie, session_socket
from tests.turn_states import assert_error, new_session, queued_turn, race

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def low_rates(settings):
    settings.API_THROTTLE_RATES = {"sessions": "2/min", "events": "2/min", "resume": "2/min"}


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_throttled(response):
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def assert_throttled_page(response):
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many requests" in response.content.decode()


def test_it_throttles_creating_sessions_on_the_api_and_the_page_alike(
    low_rates, api, user, other_user
):
    assert api.post("/api/sessions/", {}, format="json").status_code == 201
    assert page_client(user).post("/sessions/", {"title": "by page"}).status_code == 302

    assert_throttled(api.post("/api/sessions/", {}, format="json"))
    assert_throttled_page(page_client(user).post("/sessions/", {"title": "one more"}))

    assert AgentSession.objects.filter(owner=user).count() == 2
    # Listing is not a change, and another user has their own count.
    assert api.get("/api/sessions/").status_code == 200
    assert page_client(other_user).post("/sessions/", {"title": "theirs"}).status_code == 302


def test_it_counts_renames_and_deletes_as_session_changes(low_rates, api, user):
    kept, deleted, spared = (new_session(user) for _ in range(3))
    assert api.patch(f"/api/sessions/{kept.pk}/", {"title": "Renamed"}).status_code == 200
    assert page_client(user).post(f"/sessions/{deleted.pk}/delete/").status_code == 302

    assert_throttled(api.delete(f"/api/sessions/{spared.pk}/"))
    assert_throttled_page(page_client(user).post(f"/sessions/{kept.pk}/rename/", {"title": "x"}))

    kept.refresh_from_db()
    assert kept.title == "Renamed"
    assert set(AgentSession.objects.values_list("pk", flat=True)) == {kept.pk, spared.pk}


def test_it_throttles_reading_a_timeline_on_the_api_and_the_chat_page(low_rates, api, user):
    session = queued_turn(user).session
    assert api.get(f"/api/sessions/{session.pk}/events/").status_code == 200
    assert page_client(user).get(f"/sessions/{session.pk}/").status_code == 200

    assert_throttled(api.get(f"/api/sessions/{session.pk}/events/"))
    assert_throttled_page(page_client(user).get(f"/sessions/{session.pk}/"))


def test_it_refuses_a_turn_beyond_the_users_active_turns_until_one_ends(settings, api, user):
    settings.MAX_ACTIVE_TURNS_PER_USER = 5
    active = [queued_turn(user) for _ in range(5)]
    sixth = new_session(user)

    refused = api.post(f"/api/sessions/{sixth.pk}/turns/", {"message": "one more"}, format="json")

    assert_error(refused, 429, "too_many_active_turns")
    assert not sixth.turns.exists()
    # A message waiting behind its session's active turn starts only when that one ends.
    waiting = api.post(
        f"/api/sessions/{active[0].session_id}/turns/",
        {"message": "after that", "on_busy": "enqueue"},
        format="json",
    )
    assert waiting.status_code == 202
    assert waiting.json()["status"] == TurnStatus.PENDING

    lifecycle.turn_request_cancel(session=active[1].session, actor=user)
    accepted = api.post(f"/api/sessions/{sixth.pk}/turns/", {"message": "now"}, format="json")
    assert accepted.status_code == 202, accepted.content
    assert Turn.objects.get(pk=accepted.json()["id"]).status == TurnStatus.QUEUED


@pytest.mark.parametrize("round_", range(3))
def test_it_lets_one_of_two_racing_turns_take_the_last_place(round_, settings, user):
    settings.MAX_ACTIVE_TURNS_PER_USER = 2
    queued_turn(user)
    sessions = [new_session(user), new_session(user)]

    def send(session):
        return lambda: lifecycle.turn_start(session=session, message="hello", actor=user)

    outcomes = race(*(send(session) for session in sessions))

    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["error", "ok"], outcomes
    [refusal] = [value for kind, value in outcomes if kind == "error"]
    assert isinstance(refusal, errors.TooManyActiveTurns)
    assert Turn.objects.filter(session__in=sessions).count() == 1


def test_it_refuses_a_socket_beyond_the_users_cap(settings, user, other_user):
    settings.MAX_SOCKETS_PER_USER = 2
    mine, theirs = new_session(user), new_session(other_user)
    cookie, their_cookie = session_cookie(user), session_cookie(other_user)

    async def scenario():
        first, second, third = (session_socket(mine.pk, cookie) for _ in range(3))
        others = session_socket(theirs.pk, their_cookie)
        try:
            assert (await first.connect(timeout=5))[0]
            assert (await second.connect(timeout=5))[0]
            assert await third.connect(timeout=5) == (False, CloseCode.TOO_MANY)
            assert (await others.connect(timeout=5))[0]

            await second.disconnect()
            again = session_socket(mine.pk, cookie)
            assert (await again.connect(timeout=5))[0]
            await again.disconnect()
        finally:
            for socket in (first, second, others):
                await socket.disconnect()

    async_to_sync(scenario)()


def test_it_keeps_counting_an_open_socket_and_stops_for_a_dead_process(settings, monkeypatch, user):
    settings.MAX_SOCKETS_PER_USER = 1
    monkeypatch.setattr(sockets, "ALIVE_SECONDS", 0.5)
    monkeypatch.setattr(sockets, "REFRESH_SECONDS", 0.1)
    session = new_session(user)
    cookie = session_cookie(user)

    async def scenario():
        first = session_socket(session.pk, cookie)
        try:
            assert (await first.connect(timeout=5))[0]
            # Well past its first lease: the process holding it has pushed it forward.
            await asyncio.sleep(1.5)
            assert await session_socket(session.pk, cookie).connect(timeout=5) == (
                False,
                CloseCode.TOO_MANY,
            )
        finally:
            await first.disconnect()

    async_to_sync(scenario)()
    assert not OpenSocket.objects.exists()

    # A web process killed with the socket open left its row, and no longer refreshes it.
    OpenSocket.objects.create(
        user=user, channel_name="dead-process!1", alive_until=timezone.now() - timedelta(seconds=1)
    )

    async def reopen():
        socket = session_socket(session.pk, cookie)
        try:
            assert (await socket.connect(timeout=5))[0]
        finally:
            await socket.disconnect()

    async_to_sync(reopen)()
    assert not OpenSocket.objects.filter(channel_name="dead-process!1").exists()


def test_it_closes_a_socket_that_resumes_too_often(low_rates, user):
    session = queued_turn(user).session
    cookie = session_cookie(user)

    async def scenario():
        socket = session_socket(session.pk, cookie)
        try:
            assert (await socket.connect(timeout=5))[0]
            for _ in range(2):
                await socket.send_json_to({"type": "resume", "after_seq": 0})
                while (await socket.receive_json_from(timeout=5))["type"] != "replayed":
                    pass
            await socket.send_json_to({"type": "resume", "after_seq": 0})
            refusal = await socket.receive_json_from(timeout=5)
            assert (refusal["type"], refusal["code"]) == ("error", "throttled")
            assert await socket.receive_output(timeout=5) == {
                "type": "websocket.close",
                "code": CloseCode.TOO_MANY,
            }
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def list_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_the_session_list_costs_the_same_queries_for_5_and_60_sessions(settings, api, user):
    settings.MAX_ACTIVE_TURNS_PER_USER = 100
    page = page_client(user)
    for _ in range(2):
        queued_turn(user)
    for _ in range(3):
        new_session(user)
    few = (list_queries(page, "/sessions/"), list_queries(api, "/api/sessions/"))

    for _ in range(20):
        queued_turn(user)
    for _ in range(35):
        new_session(user)
    many = (list_queries(page, "/sessions/"), list_queries(api, "/api/sessions/"))

    assert many == few
    body = page.get("/sessions/").content.decode()
    assert body.count('data-session="') == SESSIONS_PER_PAGE
    assert 'href="?page=2"' in body
    assert page.get("/sessions/?page=2").content.decode().count('data-session="') == 10


def test_it_asks_caches_not_to_store_authenticated_answers(api, user):
    session = new_session(user)
    page = page_client(user)
    for response in (
        page.get("/sessions/"),
        page.get(f"/sessions/{session.pk}/"),
        api.get("/api/sessions/"),
        api.get(f"/api/sessions/{session.pk}/events/"),
    ):
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
    assert "no-store" not in page.get("/static/agentproj/app.css").get("Cache-Control", "")
