"""/api/docs/ reads right: every operation says what it does, and every request body it offers as
an example (Swagger UI's "Try it out" starts from one) is one the API accepts."""

import json

import pytest
from django.test import Client

from agentproj.vocabulary import TurnStatus
from tests.turn_states import new_session, queued_turn, turn_in, waiting_turn

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def operations(schema: dict):
    for path, described in schema["paths"].items():
        for method, operation in described.items():
            if method in METHODS:
                yield path, method, operation


def request_examples(schema: dict, operation: dict) -> list[tuple[str, dict]]:
    """The JSON bodies the operation offers: its own examples and its body component's."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return []
    found = [(name, example["value"]) for name, example in content.get("examples", {}).items()]
    if "example" in content:
        found.append(("example", content["example"]))
    reference = content["schema"].get("$ref", "")
    component = schema["components"]["schemas"].get(reference.rsplit("/", 1)[-1], {})
    if "example" in component:
        found.append((reference, component["example"]))
    return found


def test_every_operation_has_a_summary_and_a_description(schema):
    for path, method, operation in operations(schema):
        assert operation.get("summary", "").strip(), (method, path)
        assert operation.get("description", "").strip(), (method, path)


def test_every_request_body_comes_with_an_example(schema):
    for path, method, operation in operations(schema):
        if "requestBody" in operation:
            assert request_examples(schema, operation), (method, path)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def real_path(template: str, owner) -> str:
    """The path with real ids: a session whose turn waits for approval of a send_email call
    (what Stop, approve and reject act on), an idle one to send a message to, or one whose last
    turn ended, to regenerate."""
    if template.endswith("/turns/"):
        session = new_session(owner)
        turn, approval = None, None
    elif template.endswith("/regenerate/"):
        turn, approval = turn_in(TurnStatus.COMPLETED, owner), None
        session = turn.session
    elif "{approval_id}" in template:
        turn, approval = waiting_turn(owner)
        session = turn.session
    else:
        turn = queued_turn(owner)
        session, approval = turn.session, None
    ids = {
        "session_id": session.pk,
        "turn_id": turn and turn.pk,
        "approval_id": approval and approval.pk,
    }
    return template.format(**ids)


def test_every_request_example_is_accepted(schema, user, approver, settings):
    # Each example gets a session of its own with a turn in it, active or ended: more than the
    # limit of a user's active turns, which is not what this test is about.
    settings.MAX_ACTIVE_TURNS_PER_USER = 1000
    owner, decider = logged_in(user), logged_in(approver)
    tried = []
    for template, method, operation in operations(schema):
        successes = {int(status) for status in operation["responses"] if status.startswith("2")}
        for name, body in request_examples(schema, operation):
            client = decider if template.startswith("/api/approvals/") else owner
            response = getattr(client, method)(
                real_path(template, user), body, content_type="application/json"
            )
            tried.append((method, template, name))
            assert response.status_code in successes, (
                method,
                template,
                name,
                response.status_code,
                response.content[:300],
            )
    assert tried, "the schema offers no request examples"
