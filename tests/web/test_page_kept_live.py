"""A chat page kept live shows what a page drawn fresh shows (Zulip's habit): for every event kind,
a page drawn by the server after any number of a session's events, then given the socket's
messages for the rest as chat.js places them (``page_applier``), equals the page drawn from all
of them. So does a page that was open while the events happened, streamed text included.

The events come from real turns: the loopback model, the worker's turn host in a thread, and
decisions through the approvals' services."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group
from django.db import connections
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.utils import timezone

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, Outcome, PolicyRule
from sessions_app.core import lifecycle, selectors, sessions, versions
from sessions_app.models import AgentSession, Turn
from sessions_app.web.timeline import render
from tests.conftest import ASK_FOR_EMAIL, wait_for
from tests.html_tree import parse
from tests.sockets import resumed_session_socket, session_cookie
from tests.web.page_applier import ChatPage

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

S = TurnStatus
# Bounds how long a broken test waits for the socket; never a claim about speed.
SOCKET_TIMEOUT = 30


@dataclass
class Drive:
    """Drives a session's turns as its owner, a worker and approvers would."""

    session: AgentSession
    owner: object
    llm: object
    run_turn_in_thread: Callable
    make_approver: Callable
    settings: object
    request: pytest.FixtureRequest

    def turn(self, message: str, ends: str = S.COMPLETED) -> Turn:
        turn = lifecycle.turn_start(session=self.session, message=message, actor=self.owner)
        return self.run(turn, ends)

    def run(self, turn: Turn, ends: str = S.COMPLETED) -> Turn:
        assert self.run_turn_in_thread(turn.pk).join() == ends
        turn.refresh_from_db()
        return turn

    def parked(self) -> tuple[Turn, ApprovalRequest]:
        turn = self.turn(ASK_FOR_EMAIL, ends=S.WAITING_FOR_APPROVAL)
        return turn, turn.approval_requests.get()

    def decide(self, approval: ApprovalRequest, approve: bool = True, by=None, **choices) -> None:
        approval_services.approval_decide(
            approval_id=approval.pk, actor=by or self.owner, approve=approve, **choices
        )

    def stop_while_streaming(self, message: str) -> Turn:
        turn = lifecycle.turn_start(session=self.session, message=message, actor=self.owner)
        thread = self.run_turn_in_thread(turn.pk)
        wait_for(lambda: turn.events.filter(kind__in=self.stop_after).exists())
        lifecycle.turn_request_cancel(session=self.session, actor=self.owner)
        assert thread.join() == S.STOPPED
        return turn

    stop_after = (EventKind.ASSISTANT_MESSAGE, EventKind.TOOL_PROGRESS)


# One scenario per event kind (and per way a decision goes); each ends with its kind in the
# timeline. The name's first part is the kind.


def user_message(drive: Drive) -> None:
    drive.turn("hello <b>there</b>")


def assistant_message(drive: Drive) -> None:
    drive.turn("show me some markdown")


def tool_call_and_result(drive: Drive) -> None:
    drive.turn("what time is it?")


def approval_requested(drive: Drive) -> None:
    drive.parked()


def approved(drive: Drive) -> None:
    turn, approval = drive.parked()
    drive.decide(approval, reason="fine")
    drive.run(turn)


def rejected(drive: Drive) -> None:
    turn, approval = drive.parked()
    drive.decide(approval, approve=False, reason="not to them")
    drive.run(turn)


def edited(drive: Drive) -> None:
    turn, approval = drive.parked()
    drive.decide(approval, arguments={**approval.arguments, "subject": "Edited on the way"})
    drive.run(turn)


def quorum_pending(drive: Drive) -> None:
    PolicyRule.objects.create(
        name="Two approvers", tool_name="send_email", outcome=Outcome.REQUIRE_APPROVAL, quorum=2
    )
    _, approval = drive.parked()
    drive.decide(approval, reason="one of two")


def grant_made(drive: Drive) -> None:
    turn, approval = drive.parked()
    drive.decide(approval, grant=["to"])
    drive.run(turn)
    # The grant lets the next call to the same address through, and says so.
    drive.turn(ASK_FOR_EMAIL)


def grant_revoked(drive: Drive) -> None:
    turn, approval = drive.parked()
    drive.decide(approval, grant=[])
    drive.run(turn)
    grant = approval.grant
    approval_services.grant_revoke(
        session_id=drive.session.pk, grant_id=grant.pk, actor=drive.make_approver("dave")
    )


def escalated(drive: Drive) -> None:
    desk, managers = Group.objects.create(name="mail desk"), Group.objects.create(name="managers")
    drive.make_approver("fran").groups.add(desk)
    PolicyRule.objects.create(
        name="Escalating",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=desk,
        escalate_after=timedelta(hours=1),
        escalate_to=managers,
    )
    _, approval = drive.parked()
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        escalate_at=timezone.now() - timedelta(seconds=1)
    )
    assert approval_services.approvals_escalate() == 1


def nobody_to_approve(drive: Drive) -> None:
    PolicyRule.objects.create(
        name="Empty desk",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=Group.objects.create(name="empty desk"),
    )
    # Rejected as it is made: the turn is queued again at once, and tells the model.
    drive.run(drive.turn(ASK_FOR_EMAIL, ends=S.WAITING_FOR_APPROVAL))


def sub_agent(drive: Drive) -> None:
    drive.turn("delegate say hello")


def approval_expired(drive: Drive) -> None:
    _, approval = drive.parked()
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert approval_services.approvals_expire() == 1


def stopped_while_waiting(drive: Drive) -> None:
    drive.parked()
    lifecycle.turn_request_cancel(session=drive.session, actor=drive.owner)


def interrupt(drive: Drive) -> None:
    drive.stop_while_streaming("tell me a story")


def error(drive: Drive) -> None:
    drive.llm.fail(500, times=drive.settings.LLM_MAX_RETRIES + 1)
    drive.turn("hello", ends=S.FAILED)


def tool_progress(drive: Drive) -> None:
    drive.request.getfixturevalue("server_log")
    drive.stop_while_streaming('call testsrv__slow {"label": "long"}')


def context_trimmed(drive: Drive) -> None:
    drive.settings.AGENT_CONTEXT_TOKENS = 4_000
    drive.settings.AGENT_ANSWER_RESERVE_TOKENS = 500
    for n in range(4):
        drive.turn(f"message {n}: {'x' * 2_400}")


def version_shown(drive: Drive) -> None:
    first = drive.turn("name a colour")
    regenerate = versions.turn_regenerate
    drive.run(regenerate(session_id=drive.session.pk, owner=drive.owner, turn_id=first.pk))
    versions.turn_version_show(session_id=drive.session.pk, owner=drive.owner, turn_id=first.pk)


SCENARIOS = {
    "user_message": user_message,
    "assistant_message": assistant_message,
    "tool_call": tool_call_and_result,
    "tool_result": tool_call_and_result,
    "approval_requested": approval_requested,
    "approval_decided-approved": approved,
    "approval_decided-rejected": rejected,
    "approval_decided-edited": edited,
    "approval_decided-quorum_pending": quorum_pending,
    "approval_decided-grant_made": grant_made,
    "approval_grant_revoked": grant_revoked,
    "approval_escalated": escalated,
    "approval_decided-nobody_to_approve": nobody_to_approve,
    "status-sub_agent": sub_agent,
    "status-approval_expired": approval_expired,
    "status-stopped_while_waiting": stopped_while_waiting,
    "interrupt": interrupt,
    "error": error,
    "tool_progress": tool_progress,
    "context_trimmed": context_trimmed,
    "version_shown": version_shown,
}


def test_every_event_kind_has_a_scenario():
    assert {name.split("-")[0] for name in SCENARIOS} == set(EventKind.values)


# The pages


def drawn(session: AgentSession, viewer, events: list[dict]) -> str:
    """The chat page as the server draws it after ``events``."""
    request = RequestFactory().get(f"/sessions/{session.pk}/")
    request.user = viewer
    timeline = render.page(
        events, session_id=session.pk, can_decide=approval_services.can_decide(viewer)
    )
    return render_to_string(
        "sessions/detail.html",
        {"session": session, "timeline": timeline, "message_max_chars": 100},
        request=request,
    )


# What a template's own syntax looks like, should any of it reach a person's screen.
TEMPLATE_SYNTAX = ("{#", "#}", "{%", "%}", "{{", "}}")


def fresh(session: AgentSession, viewer) -> list[str]:
    client = Client()
    client.force_login(viewer)
    response = client.get(f"/sessions/{session.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    text = parse(html).visible_text
    assert [syntax for syntax in TEMPLATE_SYNTAX if syntax in text] == [], "template syntax shown"
    return ChatPage(html).shown()


def replayed(session: AgentSession, cookie: bytes, after: int) -> list[dict]:
    async def resume() -> list[dict]:
        messages = []
        async with resumed_session_socket(session.pk, cookie, after_seq=after) as socket:
            while (message := await socket.receive_json_from(SOCKET_TIMEOUT))["type"] != "replayed":
                messages.append(message)
        return messages

    return async_to_sync(resume)()


def kept_live(session: AgentSession, cookie: bytes, after: int, drive: Callable) -> list[dict]:
    """Every message a page's socket, resumed after ``after``, gets while ``drive`` runs, until
    it has every event in its final form."""

    def driven() -> list[dict]:
        try:
            drive()
            return selectors.events_after(session.pk, 0, limit=None)
        finally:
            connections.close_all()

    async def open_meanwhile() -> list[dict]:
        messages = []
        async with resumed_session_socket(session.pk, cookie, after_seq=after) as socket:
            while (message := await socket.receive_json_from(SOCKET_TIMEOUT))["type"] != "replayed":
                messages.append(message)
            final = await sync_to_async(driven, thread_sensitive=False)()
            waiting = [event for event in final if event["seq"] > after]
            while waiting:
                message = await socket.receive_json_from(SOCKET_TIMEOUT)
                messages.append(message)
                waiting = [event for event in waiting if message.get("event") != event]
        return messages

    return async_to_sync(open_meanwhile)()


@pytest.fixture
def resumes_unlimited(settings):
    """This test resumes once per event: the per-user rate of resumes is not its subject."""
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "resume": "100000/min"}


@pytest.mark.usefixtures("resumes_unlimited", "outbox")
@pytest.mark.parametrize("name", SCENARIOS)
def test_a_page_kept_live_shows_what_a_fresh_one_shows(
    name, request, settings, llm, approver, make_approver, run_turn_in_thread
):
    session = sessions.session_create(owner=approver, title="Kept live")
    drive = Drive(session, approver, llm, run_turn_in_thread, make_approver, settings, request)
    cookie = session_cookie(approver)
    opened = ChatPage(drawn(session, approver, []))

    live = kept_live(session, cookie, opened.resume_from(), lambda: SCENARIOS[name](drive))

    events = selectors.events_after(session.pk, 0, limit=None)
    assert name.split("-")[0] in {event["kind"] for event in events}
    expected = fresh(session, approver)
    opened.apply(live)
    assert opened.shown() == expected, "the page open while the events happened"
    for k in range(len(events) + 1):
        page = ChatPage(drawn(session, approver, events[:k]))
        page.apply(replayed(session, cookie, page.resume_from()))
        assert page.shown() == expected, f"the page drawn after {k} events"
