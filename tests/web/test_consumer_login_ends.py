"""A socket lives no longer than its login: logging out closes it at once, and a login that ended
otherwise (session gone, password changed, user deactivated, permission removed) is closed before
the next message would be forwarded."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.test import Client

from agentproj.vocabulary import CloseCode, EventKind
from sessions_app.core import lifecycle, sessions
from sessions_app.models import TimelineEvent
from tests.sockets import queue_socket, session_socket
from tests.turn_states import waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

CLOSED_AS_LOGGED_OUT = {"type": "websocket.close", "code": CloseCode.LOGIN_ENDED}


def logged_in(user) -> tuple[Client, bytes]:
    client = Client()
    client.force_login(user)
    return client, f"sessionid={client.cookies['sessionid'].value}".encode()


def start_and_stop_a_turn(session, user):
    lifecycle.turn_start(session=session, message="hello", actor=user)
    lifecycle.turn_request_cancel(session=session, actor=user)


async def resumed(socket) -> None:
    accepted, _ = await socket.connect(timeout=5)
    assert accepted
    await socket.send_json_to({"type": "resume", "after_seq": 0})
    assert (await socket.receive_json_from(timeout=5))["type"] == "replayed"


def test_it_closes_the_session_socket_at_logout_and_forwards_nothing_after(user):
    session = sessions.session_create(owner=user)
    client, cookie = logged_in(user)

    async def scenario():
        socket = session_socket(session.pk, cookie)
        try:
            await resumed(socket)
            logout = await sync_to_async(client.post)("/accounts/logout/")
            closed = await socket.receive_output(timeout=10)
            return logout, closed
        finally:
            await socket.disconnect()

    logout, closed = async_to_sync(scenario)()

    assert logout.status_code == 302
    assert closed == CLOSED_AS_LOGGED_OUT
    # A plain int: daphne's websocket library refuses to close an open socket with anything else.
    assert type(closed["code"]) is int


def test_it_keeps_the_sockets_of_another_login_of_the_same_user(user):
    session = sessions.session_create(owner=user)
    leaving, _ = logged_in(user)
    _, staying = logged_in(user)

    async def scenario():
        socket = session_socket(session.pk, staying)
        try:
            await resumed(socket)
            await sync_to_async(leaving.post)("/accounts/logout/")
            await sync_to_async(start_and_stop_a_turn)(session, user)
            return await socket.receive_json_from(timeout=10)
        finally:
            await socket.disconnect()

    first = async_to_sync(scenario)()

    assert first["type"] == "event" and first["event"]["kind"] == EventKind.USER_MESSAGE


def end_by_deleting_the_session(user):
    Session.objects.all().delete()


def end_by_changing_the_password(user):
    user.set_password("a-new-password-2")
    user.save()


def end_by_deactivating_the_user(user):
    user.is_active = False
    user.save()


@pytest.mark.parametrize(
    "end_login",
    [end_by_deleting_the_session, end_by_changing_the_password, end_by_deactivating_the_user],
)
def test_it_closes_the_session_socket_before_forwarding_once_the_login_ended(
    end_login, user, settings
):
    settings.WEBSOCKET_LOGIN_RECHECK_INTERVAL = 0
    session = sessions.session_create(owner=user)
    _, cookie = logged_in(user)

    async def scenario():
        socket = session_socket(session.pk, cookie)
        try:
            await resumed(socket)
            await sync_to_async(end_login)(user)
            await sync_to_async(start_and_stop_a_turn)(session, user)
            return await socket.receive_output(timeout=10)
        finally:
            await socket.disconnect()

    first = async_to_sync(scenario)()

    assert first == CLOSED_AS_LOGGED_OUT
    assert TimelineEvent.objects.filter(session=session).exists()


def test_it_refuses_a_resume_once_the_login_ended(user, settings):
    settings.WEBSOCKET_LOGIN_RECHECK_INTERVAL = 0
    session = sessions.session_create(owner=user)
    _, cookie = logged_in(user)

    async def scenario():
        socket = session_socket(session.pk, cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            await sync_to_async(end_by_deleting_the_session)(user)
            await socket.send_json_to({"type": "resume", "after_seq": 0})
            return await socket.receive_output(timeout=10)
        finally:
            await socket.disconnect()

    assert async_to_sync(scenario)() == CLOSED_AS_LOGGED_OUT


def test_it_closes_the_approval_queue_socket_at_logout(approver):
    client, cookie = logged_in(approver)

    async def scenario():
        socket = queue_socket(cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            await sync_to_async(client.post)("/accounts/logout/")
            return await socket.receive_output(timeout=10)
        finally:
            await socket.disconnect()

    assert async_to_sync(scenario)() == CLOSED_AS_LOGGED_OUT


def test_it_closes_the_approval_queue_socket_once_the_permission_is_gone(approver, user, settings):
    settings.WEBSOCKET_LOGIN_RECHECK_INTERVAL = 0
    _, cookie = logged_in(approver)

    def revoke():
        approver.user_permissions.remove(Permission.objects.get(codename="decide_approvalrequest"))

    async def scenario():
        socket = queue_socket(cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            await sync_to_async(revoke)()
            await sync_to_async(waiting_turn)(user)
            return await socket.receive_output(timeout=10)
        finally:
            await socket.disconnect()

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4403}
