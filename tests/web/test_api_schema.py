"""GET /api/schema/: a valid OpenAPI 3 document with every endpoint and the errors it answers."""

import json
import re

import pytest
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

# Every endpoint of DESIGN.md section 7, with the error statuses it answers (the API tests check
# each of them). Input that fails validation (body or query) is a 400; every endpoint answers 403
# without a valid login or token; sending, cancelling and deciding answer 429 beyond their rate.
ENDPOINTS = {
    ("/api/sessions/", "get"): {"200", "403"},
    ("/api/sessions/", "post"): {"201", "400", "403"},
    ("/api/sessions/{session_id}/", "get"): {"200", "403", "404"},
    ("/api/sessions/{session_id}/", "patch"): {"200", "400", "403", "404"},
    ("/api/sessions/{session_id}/", "delete"): {"204", "403", "404"},
    ("/api/agents/", "get"): {"200", "403"},
    ("/api/usage/", "get"): {"200", "400", "403"},
    ("/api/sessions/{session_id}/turns/", "post"): {"202", "400", "403", "404", "409", "429"},
    ("/api/sessions/{session_id}/turns/{turn_id}/", "get"): {"200", "403", "404"},
    ("/api/sessions/{session_id}/turns/{turn_id}/regenerate/", "post"): {
        "202",
        "400",
        "403",
        "404",
        "409",
        "429",
    },
    ("/api/sessions/{session_id}/turns/{turn_id}/show/", "post"): {"200", "403", "404", "409"},
    ("/api/sessions/{session_id}/cancel/", "post"): {
        "200",
        "202",
        "400",
        "403",
        "404",
        "409",
        "429",
    },
    ("/api/sessions/{session_id}/events/", "get"): {"200", "400", "403", "404"},
    ("/api/approvals/", "get"): {"200", "400", "403"},
    ("/api/approvals/{approval_id}/approve/", "post"): {"200", "400", "403", "404", "409", "429"},
    ("/api/approvals/{approval_id}/reject/", "post"): {"200", "400", "403", "404", "409", "429"},
    ("/api/approvals/{approval_id}/receipt/", "get"): {"200", "403", "404"},
    ("/api/approvals/receipt-key/", "get"): {"200"},
    ("/api/sessions/{session_id}/grants/{grant_id}/revoke/", "post"): {
        "200",
        "403",
        "404",
        "429",
    },
}


def resolve(schema: dict, node: dict) -> dict:
    """Follow a ``$ref`` (directly or through a single ``allOf``) to its component."""
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    if "$ref" in node:
        return schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_it_serves_a_valid_openapi_3_document(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)


def test_it_describes_every_endpoint_with_its_answers(schema):
    described = {
        (path, method): set(operation["responses"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert set(described) == set(ENDPOINTS)
    for endpoint, statuses in ENDPOINTS.items():
        assert described[endpoint] >= statuses, endpoint


def test_it_describes_errors_as_code_and_detail(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                component = resolve(schema, answer["content"]["application/json"]["schema"])
                assert set(component["required"]) >= {"code", "detail"}, (path, method, status)


def test_it_documents_the_parameters_clients_need(schema):
    paths = schema["paths"]
    turns = paths["/api/sessions/{session_id}/turns/"]["post"]
    body = resolve(schema, turns["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["message"]
    assert body["properties"]["message"]["maxLength"] > 0
    on_busy = resolve(schema, body["properties"]["on_busy"])
    assert set(on_busy["enum"]) == {"reject", "interrupt", "enqueue"}
    cancel_params = {
        p["name"] for p in paths["/api/sessions/{session_id}/cancel/"]["post"].get("parameters", [])
    }
    assert "wait" in cancel_params
    events_params = {
        p["name"] for p in paths["/api/sessions/{session_id}/events/"]["get"].get("parameters", [])
    }
    assert "after" in events_params
    assert "Token" in json.dumps(schema["components"]["securitySchemes"])


def test_it_documents_what_an_approval_may_leave_empty(schema):
    approval = schema["components"]["schemas"]["ApprovalOut"]["properties"]
    assert approval["decided_by"]["nullable"] is True
    assert approval["decided_at"]["nullable"] is True


def patterns_in(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if "pattern" in node else []
        return own + [p for value in node.values() for p in patterns_in(value)]
    if isinstance(node, list):
        return [p for value in node for p in patterns_in(value)]
    return []


@pytest.mark.parametrize(
    "component, field, one_line",
    [
        ("TurnInRequest", "message", False),
        ("RegenerateInRequest", "message", False),
        ("SessionInRequest", "title", True),
        ("SessionRenameInRequest", "title", True),
        ("CancelInRequest", "reason", False),
        ("DecisionInRequest", "reason", False),
    ],
)
def test_it_documents_the_text_rules_of_every_input(component, field, one_line, schema):
    (pattern,) = patterns_in(schema["components"]["schemas"][component]["properties"][field])
    assert re.search(pattern, "Plain text, 😀")
    assert bool(re.search(pattern, "Plain text, 😀\nand a second line")) is not one_line
    for refused in ("nul \x00", "noncharacter \ufffe", "escape \x1b[0m"):
        assert not re.search(pattern, refused), (component, refused)


def test_it_documents_the_query_parameters_as_validated(schema):
    paths = schema["paths"]
    approvals = {p["name"]: p for p in paths["/api/approvals/"]["get"]["parameters"]}
    assert set(approvals) == {"status", "limit", "offset"}
    assert approvals["limit"]["schema"]["minimum"] == 1
    assert approvals["limit"]["schema"]["maximum"] >= 50
    assert approvals["offset"]["schema"]["minimum"] == 0
    status = approvals["status"]
    assert set(status["schema"]["enum"]) == {
        "pending",
        "approved",
        "rejected",
        "cancelled",
        "expired",
    }
    after = next(
        p
        for p in paths["/api/sessions/{session_id}/events/"]["get"]["parameters"]
        if p["name"] == "after"
    )
    assert after["schema"]["type"] == "integer" and after["schema"]["minimum"] == 0
    wait = next(
        p
        for p in paths["/api/sessions/{session_id}/cancel/"]["post"]["parameters"]
        if p["name"] == "wait"
    )
    assert wait["schema"]["type"] == "boolean"


def test_it_documents_quorum_edits_and_grants_of_a_decision(schema):
    components = schema["components"]["schemas"]
    approval = components["ApprovalOut"]["properties"]
    assert {"approvals_needed", "approvals_given", "edited_arguments", "edited_by"} <= set(approval)
    approve = components["ApproveInRequest"]["properties"]
    assert approve["arguments"]["type"] == "object"
    assert [option["type"] for option in approve["grant"]["oneOf"]] == ["boolean", "object"]


def test_it_documents_the_approval_list_as_pages(schema):
    answer = schema["paths"]["/api/approvals/"]["get"]["responses"]["200"]
    page = resolve(schema, answer["content"]["application/json"]["schema"])
    assert set(page["required"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["next"]["nullable"] is True
    assert page["properties"]["results"]["type"] == "array"
