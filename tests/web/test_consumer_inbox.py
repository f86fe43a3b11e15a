"""The inbox's socket: the list as it stands on connect, then again after every change, drawn
for each approver alone, with what became of the requests that left it."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from agentproj.asgi import application
from agentproj.vocabulary import CloseCode
from approvals_app import services
from tests import turn_states
from tests.sockets import ALLOWED_ORIGIN, HOST, session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def inbox_socket(cookie: bytes | None) -> WebsocketCommunicator:
    headers = [(b"origin", ALLOWED_ORIGIN), (b"host", HOST)]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/approvals/inbox/", headers=headers)


def ids(message) -> list[int]:
    return [item["id"] for item in message["items"]]


def test_it_keeps_an_open_inbox_current(user, make_approver):
    erin, frank = make_approver("erin"), make_approver("frank")
    async_to_sync(keeps_current)(user, session_cookie(erin), frank)


async def keeps_current(user, cookie, frank):
    socket = inbox_socket(cookie)
    try:
        accepted, _ = await socket.connect(timeout=5)
        assert accepted
        first = await socket.receive_json_from(timeout=10)
        assert (first["type"], first["count"], first["items"]) == ("inbox", 0, [])

        _, approval = await sync_to_async(turn_states.waiting_turn)(user)
        arrived = await socket.receive_json_from(timeout=10)
        assert (ids(arrived), arrived["count"], arrived["left"]) == ([approval.pk], 1, [])
        assert 'class="approve"' in arrived["items"][0]["html"]
        assert "Asked for by <strong>alice</strong>" in arrived["items"][0]["html"]

        await sync_to_async(services.approval_decide)(
            approval_id=approval.pk, actor=frank, approve=True, reason="fine"
        )
        moved = await socket.receive_json_from(timeout=10)
        assert (ids(moved), moved["count"]) == ([], 0)
        assert moved["left"] == [
            {
                "id": approval.pk,
                "text": f"send_email (request {approval.pk}, asked for by alice) was approved "
                "by frank: fine",
            }
        ]
    finally:
        await socket.disconnect()


def test_each_approver_gets_their_own_list(user, make_approver):
    ops = Group.objects.create(name="ops")
    make_approver("ivy").groups.add(ops)
    outsider = make_approver("hank")
    async_to_sync(own_list)(user, session_cookie(outsider), ops)


async def own_list(user, cookie, ops):
    socket = inbox_socket(cookie)
    try:
        accepted, _ = await socket.connect(timeout=5)
        assert accepted
        await socket.receive_json_from(timeout=10)
        await sync_to_async(turn_states.waiting_turn)(user, group=ops.pk)
        told = await socket.receive_json_from(timeout=10)
        assert (told["items"], told["count"]) == ([], 0)
    finally:
        await socket.disconnect()


def test_it_refuses_whoever_is_not_an_approver(other_user):
    async_to_sync(refused)(session_cookie(other_user))


async def refused(approver_cookie):
    for cookie in (approver_cookie, None):
        socket = inbox_socket(cookie)
        accepted, code = await socket.connect(timeout=5)
        assert not accepted
        assert code == CloseCode.NOT_ALLOWED
        await socket.disconnect()
