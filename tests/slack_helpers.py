"""Approvals in Slack against ``scripts/slack_fake.py``: a real HTTP server on 127.0.0.1 that
stands in for Slack's Web API, and presses signed as Slack signs them."""

import io
import pydoc

from django.contrib.auth.models import Permission
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from scripts.slack_fake import (
    SlackFake,
    form_body,
    press_payload,
    signature_headers,
)

TOKEN = "xoxb-test-token"
SECRET = "slack-test-signing-secret"
CHANNEL = "C0APPROVALS"
INTERACTIONS = "/integrations/slack/interactions/"
SLACK_TASKS = {
    "approvals_app.tasks.slack_sync",
    "approvals_app.tasks.slack_press",
    "approvals_app.tasks.slack_withdrawn",
}
# Slack users of the fake's workspace and the addresses their profiles show.
SLACK_USERS = {
    "U0CAROL": "Carol@Example.org",
    "U0DAVE": "dave@example.org",
    "U0ALICE": "alice@example.org",
    "U0BOB": "bob@example.org",
    "U0STRANGER": "stranger@example.org",
}


def running_fake(settings):
    """The fake Slack, with ``SLACK_*`` pointing at it; it must have stopped afterwards. A test
    module's ``slack`` fixture yields from it."""
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_APPROVAL_CHANNEL = CHANNEL
    settings.APPROVAL_WEBHOOK_RETRY_DELAY = 0.01
    drop_queued_tasks()
    fake = SlackFake(users=SLACK_USERS, token=TOKEN, out=io.StringIO())
    settings.SLACK_API_URL = fake.api_url
    with fake:
        yield fake
    assert not fake.thread.is_alive()


def people_with_addresses(django_user_model, approver, user, other_user) -> dict:
    """carol and dave may decide; alice (the requester) may too; bob may not. For a test
    module's ``people`` fixture."""
    decide = Permission.objects.get(codename="decide_approvalrequest")
    approver.email = "carol@example.org"
    approver.save()
    dave = django_user_model.objects.create_user("dave", email="dave@example.org")
    dave.user_permissions.add(decide)
    user.email = "alice@example.org"
    user.save()
    user.user_permissions.add(decide)
    other_user.email = "bob@example.org"
    other_user.save()
    return {"carol": approver, "dave": dave, "alice": user, "bob": other_user}


def drop_queued_tasks() -> None:
    """On Redis the queue outlives a test: what an earlier test left queued is not this one's."""
    broker = get_broker()
    while batch := broker.dequeue():
        for ack_id, _package in batch:
            broker.acknowledge(ack_id)


def run_slack_tasks() -> list:
    """Run the Slack tasks the broker holds, as a worker would, until none is left (a press's
    decision queues the message's update); returns what each returned or raised. Other tasks
    are dropped: no worker of the test runs them."""
    broker = get_broker()
    ran = []
    while batch := broker.dequeue():
        for ack_id, package in batch:
            task = SignedPackage.loads(package)
            if task["func"] in SLACK_TASKS:
                try:
                    ran.append(pydoc.locate(task["func"])(*task["args"], **task["kwargs"]))
                except Exception as exc:
                    ran.append(exc)
            broker.acknowledge(ack_id)
    return ran


def signed_press(
    client, fake: SlackFake, *, user: str, action_id: str, timestamp=None, secret=SECRET
):
    """POST one button press to the app, signed as Slack signs it."""
    body = form_body(
        press_payload(user=user, action_id=action_id, response_url=fake.response_url(user))
    )
    return post_signed(client, body, timestamp=timestamp, secret=secret)


def post_signed(client, body: bytes, *, timestamp=None, secret=SECRET, headers=None):
    return client.post(
        INTERACTIONS,
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers=headers or signature_headers(secret, body, timestamp),
    )


def shown(fake: SlackFake) -> dict:
    """The one message the channel shows."""
    [message] = fake.messages.values()
    return message


def buttons(message: dict) -> list[tuple[str, str]]:
    return [
        (element["text"]["text"], element["action_id"])
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def outcome(message: dict) -> str:
    return " ".join(
        element["text"]
        for block in message["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
    )


def section(message: dict) -> str:
    return "\n".join(
        block["text"]["text"] for block in message["blocks"] if block["type"] == "section"
    )
