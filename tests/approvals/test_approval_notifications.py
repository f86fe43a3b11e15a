"""Approvers hear of a pending request, its decision and its expiry by e-mail and by a signed
webhook, sent from a django-q2 task; a failing webhook or broker never touches the turn.

The turn runs through the real agent loop; the notices go through the real broker and are then
run here as a worker process would run them, so a test can look at the locmem outbox.
"""

import hashlib
import hmac
import json
import pydoc
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from agentproj.vocabulary import TurnStatus
from approvals_app import notifications
from approvals_app import services as approval_services
from approvals_app.models import ApprovalStatus, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import ASK_FOR_EMAIL, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

SECRET = "webhook-test-secret"
# Bounds how long a broken test waits (a worker process takes a few seconds to start).
WORKER_TIMEOUT = 90
NOTIFY_TASK = "approvals_app.tasks.notify"


def run_notification_tasks(approval_ids) -> list[tuple[int, str, object]]:
    """Take everything the broker holds, run the notices of these approvals as a worker would
    (one at a time, in queue order) and return (approval id, status, result or exception)."""
    broker = get_broker()
    ran = []
    while batch := broker.dequeue():
        for ack_id, package in batch:
            task = SignedPackage.loads(package)
            if task["func"] == NOTIFY_TASK and task["args"][0] in approval_ids:
                try:
                    outcome = pydoc.locate(task["func"])(*task["args"], **task["kwargs"])
                except Exception as exc:
                    outcome = exc
                ran.append((*task["args"], outcome))
            broker.acknowledge(ack_id)
    return ran


class WebhookReceiver:
    """A loopback HTTP server answering each POST with the next status of its script (then
    200), keeping every request's headers and raw body."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://{}:{}/hook".format(*self.httpd.server_address[:2])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def webhook(settings):
    """A running receiver that ``APPROVAL_WEBHOOK_URL`` points at; it must stop afterwards."""
    settings.APPROVAL_WEBHOOK_SECRET = SECRET
    settings.APPROVAL_WEBHOOK_RETRY_DELAY = 0.01
    receiver = WebhookReceiver()
    settings.APPROVAL_WEBHOOK_URL = receiver.url
    receiver.thread.start()
    yield receiver
    receiver.httpd.shutdown()
    receiver.httpd.server_close()
    receiver.thread.join(10)
    assert not receiver.thread.is_alive()


@pytest.fixture
def refused_url(settings):
    """A loopback port that is bound but not listening: every connection is refused."""
    settings.APPROVAL_WEBHOOK_SECRET = SECRET
    settings.APPROVAL_WEBHOOK_RETRY_DELAY = 0.01
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        settings.APPROVAL_WEBHOOK_URL = "http://{}:{}/hook".format(*reserved.getsockname())
        yield settings.APPROVAL_WEBHOOK_URL


@pytest.fixture
def approvers(django_user_model, approver, user, other_user, settings):
    """carol (permission), dave (superuser) and erin (by group) may decide and have an address;
    frank may decide but has none; grace is inactive; the requester alice and bob do not count."""
    settings.SITE_URL = "https://agents.example.org"
    decide = Permission.objects.get(codename="decide_approvalrequest")
    approver.email = "carol@example.org"
    approver.save()
    django_user_model.objects.create_superuser("dave", email="dave@example.org")
    deciders = Group.objects.create(name="deciders")
    deciders.permissions.add(decide)
    django_user_model.objects.create_user("erin", email="erin@example.org").groups.add(deciders)
    django_user_model.objects.create_user("frank").user_permissions.add(decide)
    django_user_model.objects.create_user(
        "grace", email="grace@example.org", is_active=False
    ).user_permissions.add(decide)
    user.email = "alice@example.org"
    user.save()
    user.user_permissions.add(decide)
    other_user.email = "bob@example.org"
    other_user.save()
    return approver


def signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Agentproj-Signature"], expected)


@pytest.mark.nobody_on_duty
def test_it_emails_each_eligible_approver_when_a_turn_parks(
    email_waiting_for_approval, approvers, outbox
):
    turn, approval = email_waiting_for_approval()

    # The turn's worker loop sent nothing: the notice waits in the broker.
    assert outbox == []
    assert [user.username for user in notifications.eligible_approvers(approval)] == [
        "carol",
        "dave",
        "erin",
        "frank",
    ]

    ran = run_notification_tasks({approval.pk})

    assert [(approval_id, status) for approval_id, status, _ in ran] == [
        (approval.pk, ApprovalStatus.PENDING)
    ]
    assert [message.to for message in outbox] == [
        ["carol@example.org"],
        ["dave@example.org"],
        ["erin@example.org"],
    ]
    message = outbox[0]
    assert message.subject == f"Approval needed: send_email (request {approval.pk})"
    assert "send_email" in message.body
    assert "x@example.com" in message.body
    # Each approver's own decision link (approvals_app.links), never a shared one.
    link = f"https://agents.example.org/approvals/{approval.pk}/?t="
    assert all(link in sent.body for sent in outbox)
    assert len({sent.body for sent in outbox}) == len(outbox)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL


def test_a_rule_naming_a_group_tells_only_its_members(
    email_waiting_for_approval, approvers, outbox
):
    """Who is told is who may decide: a rule's group narrows both (a superuser outside it too)."""
    PolicyRule.objects.create(
        name="Mail waits for the deciders",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=Group.objects.get(name="deciders"),
    )
    _turn, approval = email_waiting_for_approval()

    run_notification_tasks({approval.pk})

    assert [user.username for user in notifications.eligible_approvers(approval)] == ["erin"]
    assert [message.to for message in outbox] == [["erin@example.org"]]


def test_it_emails_the_other_approvers_the_decision(
    email_waiting_for_approval, approvers, outbox, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    run_notification_tasks({approval.pk})
    outbox.clear()

    approval_services.approval_decide(
        approval_id=approval.pk, actor=approvers, approve=False, reason="not to them"
    )
    run_notification_tasks({approval.pk})

    assert [message.to for message in outbox] == [["dave@example.org"], ["erin@example.org"]]
    assert outbox[0].subject == f"Rejected: send_email (request {approval.pk})"
    assert "rejected by carol: not to them" in outbox[0].body
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED


def test_it_posts_one_signed_webhook_and_retries_after_a_500(
    email_waiting_for_approval, webhook, settings
):
    webhook.statuses = [500]
    turn, approval = email_waiting_for_approval()

    ran = run_notification_tasks({approval.pk})

    assert [outcome for _, _, outcome in ran] == [f"approval {approval.pk} pending: mailed 0"]
    assert len(webhook.requests) == 2
    (first_headers, first_body), (headers, body) = webhook.requests
    assert first_body == body
    assert headers["Content-Type"] == "application/json"
    assert signed(first_headers, first_body)
    assert signed(headers, body)
    payload = json.loads(body)
    link = f"{settings.SITE_URL}/admin/approvals_app/approvalrequest/{approval.pk}/change/"
    assert payload["id"] == approval.pk
    assert payload["status"] == "pending"
    assert payload["tool"] == "send_email"
    assert payload["arguments"] == approval.arguments
    # Only an edit adds the arguments as requested beside those that run.
    assert (payload["edited_by"], "requested_arguments" in payload) == (None, False)
    assert payload["session"] == str(turn.session_id)
    assert payload["turn"] == turn.pk
    assert payload["requested_by"] == "alice"
    assert payload["url"] == link
    assert payload["text"].startswith(f"send_email (request {approval.pk}, asked for by alice)")
    assert payload["text"].endswith(f"<{link}|Open request>")


def test_it_announces_the_decision_and_not_the_stale_request(
    email_waiting_for_approval, webhook, approver
):
    turn, approval = email_waiting_for_approval()

    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=True, reason="fine <!channel>"
    )
    ran = run_notification_tasks({approval.pk})

    # The "waiting" notice was still queued when carol decided: only the decision goes out.
    assert [(status, outcome) for _, status, outcome in ran] == [
        (ApprovalStatus.PENDING, "nothing to announce"),
        (ApprovalStatus.APPROVED, f"approval {approval.pk} approved: mailed 0"),
    ]
    [payload] = webhook.payloads()
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert payload["status"] == "approved"
    assert payload["decided_by"] == "carol"
    assert payload["reason"] == "fine <!channel>"
    # Slack shows the reason as written instead of notifying the whole channel.
    assert "approved by carol: fine &lt;!channel&gt;" in payload["text"]
    assert payload["text"].startswith(f"send_email (request {approval.pk}, asked for by alice)")


def test_the_decision_notices_show_the_arguments_as_edited(
    email_waiting_for_approval, approvers, outbox, webhook
):
    _turn, approval = email_waiting_for_approval()
    run_notification_tasks({approval.pk})
    outbox.clear()
    webhook.requests.clear()
    requested = dict(approval.arguments)
    edited = {**requested, "to": "y@example.com"}

    approval_services.approval_decide(
        approval_id=approval.pk, actor=approvers, approve=True, arguments=edited
    )
    run_notification_tasks({approval.pk})

    [payload] = webhook.payloads()
    assert (payload["status"], payload["edited_by"]) == ("approved", "carol")
    assert (payload["arguments"], payload["requested_arguments"]) == (edited, requested)
    assert '"to": "y@example.com"' in payload["text"]
    assert "edited by carol" in payload["text"]
    assert [message.to for message in outbox] == [["dave@example.org"], ["erin@example.org"]]
    body = outbox[0].body
    assert f"Arguments, as edited by carol:\n{json.dumps(edited, indent=2, sort_keys=True)}" in body
    assert f"Requested arguments:\n{json.dumps(requested, indent=2, sort_keys=True)}" in body


def test_an_edit_that_hands_the_request_to_another_group_asks_that_group(
    email_waiting_for_approval, approvers, outbox, django_user_model
):
    board = Group.objects.create(name="board")
    PolicyRule.objects.create(
        name="Board mail needs two of the board",
        tool_name="send_email",
        field="to",
        operator="email_domain_in",
        value="board.test",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=board,
        quorum=2,
    )
    approvers.groups.add(board)
    django_user_model.objects.get(username="erin").groups.add(board)
    _turn, approval = email_waiting_for_approval()
    run_notification_tasks({approval.pk})
    outbox.clear()

    approval_services.approval_decide(
        approval_id=approval.pk,
        actor=approvers,
        approve=True,
        arguments={**approval.arguments, "to": "chair@board.test"},
    )
    ran = run_notification_tasks({approval.pk})

    assert [status for _, status, _ in ran] == [ApprovalStatus.PENDING]
    # The board's other member is asked; carol approved it already, dave is not of the board.
    assert [message.to for message in outbox] == [["erin@example.org"]]
    assert outbox[0].subject == f"Approval needed: send_email (request {approval.pk})"
    assert "Arguments, as edited by carol:" in outbox[0].body
    assert "chair@board.test" in outbox[0].body


def test_it_notifies_from_a_worker_process(llm, user, approver, webhook, worker_process):
    worker_process(APPROVAL_WEBHOOK_URL=webhook.url, APPROVAL_WEBHOOK_SECRET=SECRET)
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message=ASK_FOR_EMAIL, actor=user)

    wait_for(lambda: webhook.requests, timeout=WORKER_TIMEOUT)
    approval = turn.approval_requests.get()
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    wait_for(lambda: Turn.objects.get(pk=turn.pk).is_terminal, timeout=WORKER_TIMEOUT)
    wait_for(lambda: len(webhook.requests) == 2, timeout=WORKER_TIMEOUT)

    assert all(signed(headers, body) for headers, body in webhook.requests)
    assert [(p["id"], p["status"]) for p in webhook.payloads()] == [
        (approval.pk, "pending"),
        (approval.pk, "approved"),
    ]
    assert Turn.objects.get(pk=turn.pk).status == TurnStatus.COMPLETED


def test_it_announces_an_expiry(email_waiting_for_approval, webhook):
    turn, approval = email_waiting_for_approval()
    run_notification_tasks({approval.pk})
    webhook.requests.clear()
    approval.expires_at = timezone.now() - timedelta(seconds=1)
    approval.save(update_fields=["expires_at"])

    assert approval_services.approvals_expire() == 1
    run_notification_tasks({approval.pk})

    [payload] = webhook.payloads()
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert payload["id"] == approval.pk
    assert payload["status"] == "expired"
    assert "expired without a decision" in payload["text"]


def test_it_tells_the_approvers_when_a_stop_cancels_the_request(
    email_waiting_for_approval, approvers, user, webhook, outbox
):
    turn, approval = email_waiting_for_approval()
    run_notification_tasks({approval.pk})
    webhook.requests.clear()
    outbox.clear()

    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    run_notification_tasks({approval.pk})

    [payload] = webhook.payloads()
    assert payload["id"] == approval.pk
    assert payload["status"] == "cancelled"
    assert "no longer needed" in payload["text"]
    assert sorted(to for message in outbox for to in message.to) == [
        "carol@example.org",
        "dave@example.org",
        "erin@example.org",
    ]
    assert {message.subject for message in outbox} == {
        f"Cancelled: send_email (request {approval.pk})"
    }


def test_it_parks_and_resumes_the_turn_while_the_webhook_is_down(
    email_waiting_for_approval, refused_url, approvers, outbox, run_turn_in_thread, settings
):
    turn, approval = email_waiting_for_approval()

    [(_, _, failure)] = run_notification_tasks({approval.pk})

    assert isinstance(failure, notifications.NotificationFailed)
    # The e-mails still went out, and the turn waits as before.
    assert len(outbox) == 3
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL

    approval_services.approval_decide(approval_id=approval.pk, actor=approvers, approve=True)
    [(_, _, failure)] = run_notification_tasks({approval.pk})

    assert isinstance(failure, notifications.NotificationFailed)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    outbox.clear()
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert [message.to for message in outbox] == [["x@example.com"]]


def test_it_parks_the_turn_when_the_broker_refuses_the_notice(
    email_waiting_for_approval, monkeypatch
):
    refused = []

    def broker_down(func, *args, **kwargs):
        refused.append((func, *args))
        raise ConnectionError("broker down")

    # A broker outage cannot be staged here for the ORM broker: refuse at the enqueue seam.
    monkeypatch.setattr(notifications, "async_task", broker_down)

    turn, approval = email_waiting_for_approval()

    assert refused == [(NOTIFY_TASK, approval.pk, ApprovalStatus.PENDING)]
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert approval.status == ApprovalStatus.PENDING
