"""On a 1280x800 screen, with the admin's navigation and the queue's filters open, an approver
reads every request's whole status, its summary, age, expiry and row buttons in the approval
queue: not cut off, and not hidden to the right of the table's scroll area; at 420 px the page
does not scroll sideways (the table scrolls in its own region)."""

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from approvals_app.models import ApprovalStatus
from tests.e2e.approvals import requests_in_every_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

QUEUE = "/admin/approvals_app/approvalrequest/"
EVERY_STATUS = f"{QUEUE}?status__exact=all"
PAGE_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"
ROW_CELLS = """() => {
  const area = document.querySelector("#changelist-form .results").getBoundingClientRect();
  const cells = "td.field-summary, td.field-age, td.field-row_decision";
  return [...document.querySelectorAll(cells)].map((cell) => {
    const box = cell.getBoundingClientRect();
    return {
      cell: cell.className,
      offScreen: box.left < area.left || box.right > Math.min(area.right, window.innerWidth),
    };
  });
}"""
STATUS_CELLS = """() => {
  const area = document.querySelector("#changelist-form .results").getBoundingClientRect();
  return [...document.querySelectorAll("#result_list td.field-status")].map((cell) => {
    const box = cell.getBoundingClientRect();
    return {
      row: cell.closest("tr").querySelector("input.action-select").value,
      text: cell.innerText.trim(),
      clipped: cell.scrollWidth > cell.clientWidth,
      offScreen: box.left < area.left || box.right > Math.min(area.right, window.innerWidth),
    };
  });
}"""


def log_in(page, server, next_url: str) -> None:
    page.goto(f"{server}/admin/login/?next={quote(next_url)}")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-password-1")
    page.click("input[type=submit]")


def test_it_shows_every_status_whole_at_1280_pixels(browser, server, user, approver, output_dir):
    made = requests_in_every_status(user, approver)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, server, EVERY_STATUS)
    expect(page.locator("#nav-sidebar")).to_be_visible()
    expect(page.locator("#changelist-filter")).to_be_visible()
    page.screenshot(path=output_dir / "queue-1280.png", full_page=True)

    cells = {cell["row"]: cell for cell in page.evaluate(STATUS_CELLS)}
    assert len(cells) == len(ApprovalStatus.values)
    for status, approval in made.items():
        cell = cells[str(approval.pk)]
        assert cell["text"] == ApprovalStatus(status).label, cell
        assert not cell["clipped"], cell
        assert not cell["offScreen"], cell
    scroll_width, width = page.evaluate(PAGE_WIDTH)
    assert scroll_width <= width
    context.close()


def test_the_pending_queue_fits_1280_pixels_with_its_new_columns(
    browser, server, user, approver, output_dir
):
    requests_in_every_status(user, approver)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, server, QUEUE)
    expect(page.locator("#changelist-filter")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(1)
    page.screenshot(path=output_dir / "queue-pending-1280.png", full_page=True)

    cells = page.evaluate(ROW_CELLS)
    assert len(cells) == 3
    assert not [cell for cell in cells if cell["offScreen"]]
    scroll_width, width = page.evaluate(PAGE_WIDTH)
    assert scroll_width <= width
    context.close()


def test_the_queue_does_not_scroll_sideways_at_420_pixels(
    browser, server, user, approver, output_dir
):
    requests_in_every_status(user, approver)
    context = browser.new_context(viewport={"width": 420, "height": 800})
    page = context.new_page()
    log_in(page, server, EVERY_STATUS)
    results = page.locator("#changelist-form .results")
    expect(results).to_be_visible()
    page.screenshot(path=output_dir / "queue-420.png", full_page=True)

    scroll_width, width = page.evaluate(PAGE_WIDTH)
    assert scroll_width <= width
    # What does not fit scrolls inside the table's region, which a keyboard can reach.
    assert results.get_attribute("tabindex") == "0"
    assert results.get_attribute("role") == "region"
    results.focus()
    expect(results).to_be_focused()
    context.close()
