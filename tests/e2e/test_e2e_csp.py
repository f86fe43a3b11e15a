"""Under the strict Content-Security-Policy every page still works in a real browser, and the
browser reports no violation: the chat page (its socket included), the admin approval queue and
the API docs, whose Swagger UI is served by this site."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import chip, last_turn, new_session, send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def violations(page) -> list[str]:
    return page.evaluate("window.__violations")


def test_every_page_works_under_the_csp(login, approver, server, output_dir):
    page = login("carol", "carol-password-1")
    page.context.add_init_script(RECORD_VIOLATIONS)
    console_errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))

    page.reload()
    session_id = new_session(page, "Under the CSP")
    send(page, "hello")
    expect(chip(page, last_turn(session_id).pk)).to_have_attribute("data-status", "completed")
    assert violations(page) == []

    page.goto(f"{server}/admin/approvals_app/approvalrequest/")
    expect(page.locator("#approval-queue-live")).to_have_attribute("data-state", "live")
    assert violations(page) == []

    page.goto(f"{server}/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/sessions/").first).to_be_visible()
    page.screenshot(path=output_dir / "api-docs.png", full_page=True)
    assert violations(page) == []

    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
