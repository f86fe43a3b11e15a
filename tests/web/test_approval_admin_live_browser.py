"""The admin approval queue in a real browser: requests arrive and leave without a reload."""

import re

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import lifecycle
from sessions_app.models import Turn
from tests.conftest import wait_for
from tests.e2e import conftest as e2e
from tests.e2e.approvals import WORKER_TIMEOUT, ask_for_email, in_thread

# The browser tests' fixtures: Chromium, and `manage.py serve` on this run's databases.
browser, chromium_path = e2e.browser, e2e.chromium_path
output_dir, server = e2e.output_dir, e2e.server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

QUEUE = "/admin/approvals_app/approvalrequest/?status__exact=pending"


def row(page, approval: ApprovalRequest):
    return page.locator(f"#result_list input.action-select[value='{approval.pk}']")


def test_it_shows_new_requests_live_and_drops_decided_ones(
    browser, server, user, approver, output_dir
):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(e2e.UI_TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server}/admin/login/?next={QUEUE.replace('&', '%26').replace('?', '%3F')}")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-password-1")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/approvals_app/approvalrequest/"))
    expect(page.locator("#approval-queue-live")).to_have_attribute("data-state", "live")
    # Survives only as long as the page is not reloaded.
    page.evaluate("() => { window.__sameDocument = true; }")

    first = ask_for_email(user)
    expect(row(page, first)).to_be_visible()
    expect(page.locator("#result_list")).to_contain_text("bob@example.com")
    page.screenshot(path=output_dir / "arrived.png", full_page=True)

    # While a row is selected the list holds still; it catches up once the selection is cleared.
    row(page, first).check()
    second = ask_for_email(user)
    expect(page.locator("#approval-queue-live")).to_have_attribute("data-state", "stale")
    expect(row(page, second)).to_have_count(0)
    row(page, first).uncheck()
    expect(row(page, second)).to_be_visible()
    assert page.evaluate("() => window.__sameDocument") is True

    # Another approver decides the first one: it leaves the pending list by itself.
    in_thread(
        lambda: approval_services.approval_decide(
            approval_id=first.pk, actor=approver, approve=False, reason="not now"
        )
    )
    expect(row(page, first)).to_have_count(0)
    expect(row(page, second)).to_be_visible()
    assert page.evaluate("() => window.__sameDocument") is True

    # The approver approves the second one with the admin action of the refreshed list.
    row(page, second).check()
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Approved 1 request(s).")
    expect(page.locator("#result_list")).to_have_count(0)
    page.screenshot(path=output_dir / "approved.png", full_page=True)

    # A third one is rejected with the change page's button and a reason.
    third = ask_for_email(user)
    page.locator(f"#result_list a[href*='/{third.pk}/change/']").first.click()
    page.fill("#reject-form textarea[name=reason]", "enough emails today")
    page.screenshot(path=output_dir / "change-page.png", full_page=True)
    page.click("#reject-form input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text(f"Rejected request #{third.pk}")
    third.refresh_from_db()
    assert third.status == ApprovalStatus.REJECTED
    assert third.reason == "enough emails today"

    # The user stops a waiting turn: its request leaves the pending queue by itself.
    page.goto(f"{server}{QUEUE}")
    expect(page.locator("#approval-queue-live")).to_have_attribute("data-state", "live")
    page.evaluate("() => { window.__sameDocument = true; }")
    fourth = ask_for_email(user)
    expect(row(page, fourth)).to_be_visible()
    in_thread(lambda: lifecycle.turn_request_cancel(session=fourth.turn.session, actor=user))
    expect(row(page, fourth)).to_have_count(0)
    assert page.evaluate("() => window.__sameDocument") is True
    fourth.refresh_from_db()
    assert fourth.status == ApprovalStatus.CANCELLED

    second.refresh_from_db()
    assert second.status == ApprovalStatus.APPROVED
    assert second.decided_by == approver
    wait_for(lambda: Turn.objects.get(pk=second.turn_id).is_terminal, timeout=WORKER_TIMEOUT)
    turn = Turn.objects.get(pk=second.turn_id)
    assert turn.status == TurnStatus.COMPLETED
    second.refresh_from_db()
    assert second.executed_at is not None
    context.close()
