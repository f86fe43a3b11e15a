"""The approver inbox in a browser: live as requests come and are decided elsewhere, decided
from the keyboard alone, and whole at 420 px."""

from functools import partial

import pytest
from playwright.sync_api import expect

from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from tests.e2e.approvals import ask_for_email, in_thread
from tests.e2e.test_e2e_accessibility import tab_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

NO_SIDEWAYS_SCROLL = (
    "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)


def open_inbox(page, server):
    page.goto(f"{server}/approvals/")
    expect(page.locator("#inbox-connection")).to_have_attribute("data-state", "live")


def test_requests_arrive_and_leave_as_they_happen(login, server, user, make_approver):
    make_approver("erin")
    frank = make_approver("frank")
    page = login("erin", "erin-pw-1")
    open_inbox(page, server)
    expect(page.locator("#inbox-empty")).to_be_visible()

    approval = ask_for_email(user)

    card = page.locator(f"#inbox-{approval.pk}")
    expect(card).to_contain_text("Asked for by alice")
    expect(card).to_contain_text("bob@example.com")
    expect(page.locator("#approvals-count")).to_have_text("1")
    expect(page.locator("#inbox-empty")).to_be_hidden()

    in_thread(
        partial(
            approval_services.approval_decide,
            approval_id=approval.pk,
            actor=frank,
            approve=True,
            reason="sent it myself",
        )
    )

    expect(card.locator(".inbox-outcome")).to_contain_text("was approved by frank: sent it myself")
    expect(card.locator("button.approve")).to_have_count(0)
    expect(page.locator("#approvals-count")).to_have_text("0")


def test_an_approver_decides_with_the_keyboard_alone(login, server, user, make_approver):
    make_approver("erin")
    approval = ask_for_email(user)
    page = login("erin", "erin-pw-1")
    open_inbox(page, server)
    card = page.locator(f"#inbox-{approval.pk}")
    expect(card).to_be_visible()

    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    assert tab_until(page, f"#inbox-{approval.pk} input[name=reason]"), "Tab never reached Reason"
    page.keyboard.type("checked the recipient")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.value") == "approve"
    page.keyboard.press("Enter")

    expect(page.locator(".messages")).to_contain_text(f"You approved request {approval.pk}")
    approval.refresh_from_db()
    assert (approval.status, approval.reason) == (ApprovalStatus.APPROVED, "checked the recipient")


def test_the_inbox_fits_a_phone(login, server, user, make_approver, output_dir):
    make_approver("erin")
    approval = ask_for_email(user)
    page = login("erin", "erin-pw-1", viewport={"width": 420, "height": 900})
    open_inbox(page, server)
    card = page.locator(f"#inbox-{approval.pk}")
    expect(card).to_be_visible()
    card.locator("summary", has_text="Edit arguments").click()
    page.screenshot(path=output_dir / "inbox-420.png", full_page=True)

    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 420
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
