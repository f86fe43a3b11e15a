"""A GET never writes: not the pages, not the API's reads, not an admin list or change page. An
overdue approval request stays pending and a turn whose worker went quiet stays running until
the scheduled housekeeping sees to them; reading about them changes nothing."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agentproj.vocabulary import TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.models import Turn
from tests.turn_states import running_turn, waiting_turn

pytestmark = pytest.mark.django_db(databases="__all__")

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def overdue_and_stale(owner) -> tuple[ApprovalRequest, Turn]:
    """A pending request past its deadline, and a running turn whose heartbeat stopped long ago
    (its lease expired): what housekeeping expires and reaps."""
    _, approval = waiting_turn(owner)
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - timedelta(hours=1)
    )
    stale, _ = running_turn(owner)
    Turn.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(days=1))
    return approval, stale


def reads(approval: ApprovalRequest, stale: Turn) -> list[str]:
    """Every page a superuser can GET about them: the pages, the API's reads, and each admin
    model's list, and its change page where there is a row."""
    session, turn = approval.turn.session_id, approval.turn_id
    urls = [
        "/sessions/",
        f"/sessions/{session}/",
        f"/sessions/{stale.session_id}/",
        f"/sessions/{session}/rename/",
        f"/sessions/{session}/delete/",
        "/api/sessions/",
        f"/api/sessions/{session}/",
        f"/api/sessions/{session}/turns/{turn}/",
        f"/api/sessions/{session}/events/",
        "/api/agents/",
        "/api/approvals/",
        "/admin/",
    ]
    for model in admin.site._registry:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{name}_changelist"))
        row = model._default_manager.first()
        if row is not None:
            urls.append(reverse(f"{name}_change", args=[row.pk]))
    return urls


def test_no_get_writes(client, django_user_model):
    # An owner who is also a superuser reads the chat pages, the API and every admin page.
    superuser = django_user_model.objects.create_superuser("root", password="root-password-1")
    approval, stale = overdue_and_stale(superuser)
    client.force_login(superuser)

    written = {}
    for url in reads(approval, stale):
        with CaptureQueriesContext(connections["default"]) as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]
        if writes:
            written[url] = writes

    assert written == {}
    approval.refresh_from_db()
    stale.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert stale.status == TurnStatus.RUNNING
