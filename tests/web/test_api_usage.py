"""GET /api/usage/: a user reads their own usage; superusers and holders of view_usage read
everyone's, grouped by user, agent, model or day; another user's usage is 403 without that
right."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from rest_framework.test import APIClient

from sessions_app.models import UsageRecord

pytestmark = pytest.mark.django_db


def spend(user, model: str, input_tokens: int, output_tokens: int, **fields) -> UsageRecord:
    return UsageRecord.objects.create(
        user=user,
        model=model,
        agent_name="Assistant",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        **fields,
    )


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def usage(user, other_user):
    spend(user, "gpt-a", 100, 10, cost=Decimal("0.5"), currency="USD")
    spend(user, "gpt-b", 200, 20, estimated=True)
    spend(other_user, "gpt-a", 1000, 100, cost=Decimal("2"), currency="USD")


def test_a_user_sees_only_their_own_usage(user, other_user, usage):
    answer = client_of(user).get("/api/usage/?group_by=model")
    assert answer.status_code == 200
    body = answer.json()
    today = timezone.localdate()
    assert body["from"] == today.replace(day=1).isoformat()
    assert body["to"] >= today.isoformat()
    assert [
        (row["key"], row["input_tokens"], row["output_tokens"], row["cost"])
        for row in body["results"]
    ] == [("gpt-a", 100, 10, "0.500000"), ("gpt-b", 200, 20, None)]
    assert body["results"][1]["estimated_calls"] == 1

    # Even grouped by user, and asking for someone else by id, they get only their own.
    by_user = client_of(user).get("/api/usage/?group_by=user").json()["results"]
    assert [row["key"] for row in by_user] == ["alice"]
    refused = client_of(user).get(f"/api/usage/?user={other_user.pk}")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert client_of(user).get(f"/api/usage/?user={user.pk}").status_code == 200


def test_a_holder_of_view_usage_sees_everyones(user, other_user, usage, django_user_model):
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(Permission.objects.get(codename="view_usage"))
    auditor = django_user_model.objects.create_user("erin", password="erin-password-1")
    auditor.groups.add(auditors)

    rows = client_of(auditor).get("/api/usage/?group_by=user").json()["results"]
    assert [(row["key"], row["user"], row["input_tokens"]) for row in rows] == [
        ("alice", user.pk, 300),
        ("bob", other_user.pk, 1000),
    ]
    narrowed = client_of(auditor).get(f"/api/usage/?group_by=model&user={other_user.pk}")
    assert [row["key"] for row in narrowed.json()["results"]] == ["gpt-a"]
    assert narrowed.json()["results"][0]["cost"] == "2.000000"


def test_a_superuser_sees_everyones_by_day(user, other_user, usage, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    earlier = timezone.localdate() - timedelta(days=40)
    UsageRecord.objects.filter(model="gpt-b").update(created_at=timezone.now() - timedelta(days=40))
    answer = client_of(admin).get(
        f"/api/usage/?group_by=day&from={earlier.isoformat()}&to={timezone.localdate()}"
    )
    rows = answer.json()["results"]
    assert [(row["key"], row["input_tokens"]) for row in rows] == [
        (earlier.isoformat(), 200),
        (timezone.localdate().isoformat(), 1100),
    ]


@pytest.mark.parametrize(
    "query",
    ["group_by=week", "from=2026-13-01", "from=2026-12-10&to=2026-12-01", "user=0"],
)
def test_a_question_it_cannot_answer_is_a_400(user, query):
    answer = client_of(user).get(f"/api/usage/?{query}")
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"
