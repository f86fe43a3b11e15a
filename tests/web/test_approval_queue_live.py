"""An open approval queue hears about every change: new requests, decisions, cancels, expiry."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import lifecycle, sessions
from tests.sockets import queue_socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

CHANGED = {"type": "changed"}
SCRIPT = "agentproj/approval_queue.js"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(django_user_model):
    viewer = django_user_model.objects.create_user(
        "dave", password="dave-password-1", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_approvalrequest"))
    return viewer


def test_it_tells_an_open_queue_about_every_change(llm, user, approver, run_turn_in_thread):
    def park():
        session = sessions.session_create(owner=user)
        turn = lifecycle.turn_start(
            session=session, message="please send an email to x@example.com", actor=user
        )
        assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL
        return turn.approval_requests.get()

    def make_overdue(approval):
        ApprovalRequest.objects.filter(pk=approval.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )

    cookie = session_cookie(approver)

    async def scenario():
        socket = queue_socket(cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            heard = []

            decided = await sync_to_async(park)()
            heard.append(("requested", await socket.receive_json_from(timeout=10)))
            await sync_to_async(approval_services.approval_decide)(
                approval_id=decided.pk, actor=approver, approve=True
            )
            heard.append(("decided", await socket.receive_json_from(timeout=10)))

            cancelled = await sync_to_async(park)()
            heard.append(("requested", await socket.receive_json_from(timeout=10)))
            await sync_to_async(lifecycle.turn_request_cancel)(
                session=await sync_to_async(lambda: cancelled.turn.session)(), actor=user
            )
            heard.append(("cancelled", await socket.receive_json_from(timeout=10)))

            expired = await sync_to_async(park)()
            heard.append(("requested", await socket.receive_json_from(timeout=10)))
            await sync_to_async(make_overdue)(expired)
            assert await sync_to_async(approval_services.approvals_expire)() == 1
            heard.append(("expired", await socket.receive_json_from(timeout=10)))
            return heard, (decided, cancelled, expired)
        finally:
            await socket.disconnect()

    heard, (decided, cancelled, expired) = async_to_sync(scenario)()

    assert heard == [
        ("requested", CHANGED),
        ("decided", CHANGED),
        ("requested", CHANGED),
        ("cancelled", CHANGED),
        ("requested", CHANGED),
        ("expired", CHANGED),
    ]
    for approval, status in (
        (decided, ApprovalStatus.APPROVED),
        (cancelled, ApprovalStatus.CANCELLED),
        (expired, ApprovalStatus.EXPIRED),
    ):
        approval.refresh_from_db()
        assert approval.status == status


@pytest.mark.parametrize("who", ["anonymous", "user", "viewer"])
def test_it_refuses_the_queue_socket_to_those_who_may_not_decide(who, user, viewer):
    cookie = {"anonymous": None, "user": session_cookie(user), "viewer": session_cookie(viewer)}

    async def attempt():
        socket = queue_socket(cookie[who])
        try:
            return await socket.connect(timeout=5)
        finally:
            await socket.disconnect()

    accepted, code = async_to_sync(attempt)()

    assert not accepted
    assert code == 4403


def test_it_loads_the_live_script_on_the_queue_of_approvers_only(approver, viewer):
    changelist = reverse("admin:approvals_app_approvalrequest_changelist")

    for_approver = logged_in(approver).get(changelist).content.decode()
    for_viewer = logged_in(viewer).get(changelist).content.decode()

    assert f'<script type="module" src="/static/{SCRIPT}"></script>' in for_approver
    assert 'id="approval-queue-live"' in for_approver
    assert SCRIPT not in for_viewer
    assert finders.find(SCRIPT) is not None
