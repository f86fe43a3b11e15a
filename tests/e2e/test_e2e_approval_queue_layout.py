"""On a 1280x800 screen, with the admin's navigation and the queue's filters open, an approver
reads every request's whole status in the approval queue: not cut off, and not hidden to the
right of the table's scroll area."""

import pytest
from playwright.sync_api import expect

from approvals_app.models import ApprovalStatus
from tests.e2e.approvals import requests_in_every_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

QUEUE = "/admin/approvals_app/approvalrequest/"
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


def test_it_shows_every_status_whole_at_1280_pixels(browser, server, user, approver, output_dir):
    made = requests_in_every_status(user, approver)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{server}/admin/login/?next={QUEUE}")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-password-1")
    page.click("input[type=submit]")
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
    context.close()
