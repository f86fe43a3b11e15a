"""The chat page lists its session's grants, active and revoked, with Revoke for those the
revoke endpoint allows (approvers)."""

import re

import pytest
from django.test import Client

from approvals_app import services as approval_services
from approvals_app.models import SessionGrant
from tests.turn_states import waiting_turn

pytestmark = pytest.mark.django_db


def granted(owner, approver, match: list[str]) -> SessionGrant:
    """A session of ``owner`` whose e-mail ``approver`` approved for the rest of the session."""
    _, approval = waiting_turn(owner)
    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=True, grant=match
    )
    return SessionGrant.objects.get(approval=approval)


def logged_in(person) -> Client:
    client = Client()
    client.force_login(person)
    return client


def page_of(client, grant: SessionGrant) -> str:
    response = client.get(f"/sessions/{grant.session_id}/")
    assert response.status_code == 200
    return response.content.decode()


def grants_section(page: str) -> str:
    """The list's opening tag."""
    return re.search(r'<section class="card grants" id="grants"[^>]*>', page).group(0)


def row(page: str, grant: SessionGrant) -> str:
    found = re.search(rf'<li class="grant" data-grant="{grant.pk}".*?</li>', page, re.S)
    assert found, page
    return re.sub(r"\s+", " ", found.group(0))


def test_it_lists_an_active_grant_with_revoke_for_an_approver(approver):
    grant = granted(approver, approver, ["to"])
    elsewhere = granted(approver, approver, [])

    page = page_of(logged_in(approver), grant)

    assert not grants_section(page).endswith(" hidden>")
    listed = row(page, grant)
    assert 'data-state="active"' in listed
    assert '<code class="grant-tool">send_email</code>' in listed
    assert '<span class="grant-match">when to is &quot;ops@example.com&quot;</span>' in listed
    assert "granted by carol, <time" in listed
    assert '<span class="grant-state">Active</span>' in listed
    assert '<button type="button" class="revoke">Revoke</button>' in listed
    assert f'data-grant="{elsewhere.pk}"' not in page
    revoke_url = f"/api/sessions/{grant.session_id}/grants/0/revoke/"
    assert f'data-revoke-url="{revoke_url}"' in page


def test_it_shows_who_revoked_a_grant_through_the_pages_endpoint(approver):
    grant = granted(approver, approver, [])
    client = logged_in(approver)

    # What the Revoke button posts: the page's revoke URL with the grant's id.
    response = client.post(f"/api/sessions/{grant.session_id}/grants/{grant.pk}/revoke/")

    assert response.status_code == 200
    listed = row(page_of(client, grant), grant)
    assert 'data-state="revoked"' in listed
    assert '<span class="grant-match">every call</span>' in listed
    assert '<span class="grant-state">Revoked by carol, <time' in listed
    assert "Revoke</button>" not in listed
    grant.refresh_from_db()
    assert grant.revoked_by.get_username() == "carol"


def test_it_offers_no_revoke_to_an_owner_who_may_not_decide(user, approver):
    grant = granted(user, approver, ["to"])
    client = logged_in(user)

    page = page_of(client, grant)

    assert '<span class="grant-state">Active</span>' in row(page, grant)
    assert "Revoke</button>" not in page
    # The endpoint agrees: only approvers revoke.
    response = client.post(f"/api/sessions/{grant.session_id}/grants/{grant.pk}/revoke/")
    assert response.status_code == 403
    grant.refresh_from_db()
    assert grant.revoked_at is None


def test_it_hides_the_list_of_a_session_without_grants(user):
    turn, _ = waiting_turn(user)

    page = logged_in(user).get(f"/sessions/{turn.session_id}/").content.decode()

    assert grants_section(page).endswith(" hidden>")
    assert 'class="grant"' not in page
