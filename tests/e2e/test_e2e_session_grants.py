"""The chat page lists the session's grants ("approve for this session"): made on the card, kept
current by the timeline's events, revoked with the list's button."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from approvals_app import services as approval_services
from approvals_app.models import SessionGrant
from tests.e2e.browser import api_post, chip, last_turn, new_session, send, wait_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def grant_row(page, grant: SessionGrant):
    return page.locator(f"#grants .grant[data-grant='{grant.pk}']")


def expect_row(row, *, state: str, status_text: str) -> None:
    expect(row).to_have_attribute("data-state", state)
    expect(row.locator(".grant-tool")).to_have_text("send_email")
    expect(row.locator(".grant-match")).to_have_text('when to is "x@example.com"')
    expect(row.locator(".grant-made")).to_contain_text("granted by carol, ")
    expect(row.locator(".grant-state")).to_contain_text(status_text)


def test_it_lists_a_grant_made_on_the_card_and_revokes_it(login, approver, output_dir):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Grants")
    expect(page.locator("#grants")).to_be_hidden()
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = page.locator(f".turn[data-turn='{turn.pk}'] .approval")
    card.locator("input.approve-for-session").check()
    expect(card.locator(".grant-fields")).to_be_visible()
    card.locator("input.grant-field[value=to]").check()
    page.screenshot(path=output_dir / "grant-options.png", full_page=True)

    card.locator("button.approve").click()

    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    grant = SessionGrant.objects.get(session_id=session_id)
    assert (grant.match, grant.granted_by) == ({"to": "x@example.com"}, approver)
    decision = card.locator(".decision")
    expect(decision).to_have_text(
        'Approved by carol, and for the rest of this session when to is "x@example.com"'
    )
    # The event that made the grant added it to the list, as the server renders it on a reload.
    expect_row(grant_row(page, grant), state="active", status_text="Active")
    page.reload()
    wait_live(page)
    expect(page.locator("#grants .grant")).to_have_count(1)
    expect_row(grant_row(page, grant), state="active", status_text="Active")

    grant_row(page, grant).locator("button.revoke").click()

    expect_row(grant_row(page, grant), state="revoked", status_text="Revoked by carol, ")
    expect(grant_row(page, grant).locator("button.revoke")).to_have_count(0)
    page.screenshot(path=output_dir / "revoked.png", full_page=True)
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by == approver


def test_it_shows_grants_made_and_revoked_elsewhere_as_they_happen(
    login, approver, django_user_model
):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Decided elsewhere")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = page.locator(f".turn[data-turn='{turn.pk}'] .approval")
    expect(card.locator(".approval-state")).to_contain_text("Waiting for approval by")

    # Approved for the session by another client of the approver.
    status, _ = api_post(
        page,
        f"/api/approvals/{turn.approval_requests.get().pk}/approve/",
        {"grant": {"match": ["to"]}},
    )

    assert status == 200
    grant = SessionGrant.objects.get(session_id=session_id)
    expect_row(grant_row(page, grant), state="active", status_text="Active")
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")

    # Revoked elsewhere (another tab, the admin, the API): the page hears of it from the
    # timeline's approval_grant_revoked event, which reaches it like any other event.
    # From a thread of its own, as a request would: Playwright's sync API keeps an event loop
    # running in this one, and the revocation broadcasts its event on commit.
    dave = django_user_model.objects.create_superuser("dave")
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(
            approval_services.grant_revoke, session_id=session_id, grant_id=grant.pk, actor=dave
        ).result()

    expect(page.locator("#timeline > .notice.grant-revoked")).to_have_text(
        "Grant for send_email revoked by dave"
    )
    expect_row(grant_row(page, grant), state="revoked", status_text="Revoked by dave, ")
    expect(grant_row(page, grant).locator("button.revoke")).to_have_count(0)
