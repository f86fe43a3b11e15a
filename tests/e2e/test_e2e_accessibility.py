"""axe-core, run in the page, finds no serious or critical accessibility problem on the pages
people use, in the light theme and in the dark one (``prefers-color-scheme``), on a 1280 px
screen and a 420 px one: the login page, a page not found, the session list, a session while it
streams, after a stop, with a tool use and a sub-agent opened, its shortcuts and delete dialogs,
while it waits for approval, the admin approval queue and change page, and the approver
inbox, a decision link's page and a conversation an approver reads read-only. Stop is reached with
Tab and works with Enter and with Space, and every control Tab reaches shows a focus ring that
stands out from the page.

axe comes from ``static/vendor/axe-core`` (``make vendor``); no page of the site loads it. The
test evaluates its source through the browser's devtools protocol, which the page's
Content-Security-Policy does not govern, so the pages are checked under the policy users get.
"""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from agentproj.vocabulary import TurnStatus
from approvals_app import links
from tests.conftest import ROOT
from tests.e2e.approvals import ask_for_email, requests_in_every_status
from tests.e2e.browser import chip, last_turn, new_session, send, wait_for_assistant_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

AXE = ROOT / "static" / "vendor" / "axe-core" / "axe.min.js"
SCHEMES = ["light", "dark"]
# A desktop screen and a phone's: every page is audited on both (``Audit.check``).
WIDTHS = {"1280": {"width": 1280, "height": 800}, "420": {"width": 420, "height": 900}}
# What axe rates as keeping some people from using the page (its "moderate" and "minor" are
# left to review).
BLOCKING = {"serious", "critical"}
# Enough presses of Tab to pass every control of a page once.
MAX_TABS = 60
# Controls, by name, that Tab reaches on a session page waiting for approval (among others).
REACHED = {"agentproj", "Log out", "← Sessions", "Approve", "Reject", "Queue", "Stop"}
# The focused control and its outline, with the page's background the outline is drawn on.
FOCUS_RING = """() => {
  const control = document.activeElement;
  if (!control || control === document.body) return null;
  const style = getComputedStyle(control);
  return {
    control: control.outerHTML.slice(0, 120),
    name: (control.innerText || control.getAttribute("aria-label") || control.name || "").trim(),
    style: style.outlineStyle,
    width: parseFloat(style.outlineWidth),
    color: style.outlineColor,
    background: getComputedStyle(document.documentElement).backgroundColor,
  };
}"""
RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary})),
  }));
}"""


def axe_problems(page) -> list[dict]:
    """The page's serious and critical axe violations, as it is on screen now."""
    if not page.evaluate("() => typeof axe === 'object'"):
        page.evaluate(AXE.read_text())
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def describe(problems: list[dict]) -> str:
    lines = []
    for problem in problems:
        lines.append(f"{problem['id']} ({problem['impact']}): {problem['help']}")
        lines += [f"    {node['target']}: {node['summary']}" for node in problem["nodes"]]
    return "\n".join(lines)


class Audit:
    """Runs axe on each page a test visits (after a screenshot of it) and keeps what it finds,
    so that one run reports every page's problems, not only the first page's."""

    def __init__(self, output_dir, scheme: str):
        self.output_dir, self.scheme = output_dir, scheme
        self.found: list[str] = []

    def check(self, page, where: str) -> None:
        """Audits the page as it is now on each screen width, and leaves it at the first."""
        for width, viewport in reversed(WIDTHS.items()):
            page.set_viewport_size(viewport)
            page.screenshot(
                path=self.output_dir / f"{where}-{self.scheme}-{width}.png", full_page=True
            )
            problems = axe_problems(page)
            if problems:
                self.found.append(
                    f"{where} ({self.scheme} theme, {width} px):\n{describe(problems)}"
                )

    def assert_none(self) -> None:
        assert self.found == [], "\n".join(self.found)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_finds_nothing_serious_on_the_login_page(browser, server, output_dir, scheme):
    audit = Audit(output_dir, scheme)
    context = browser.new_context(color_scheme=scheme, viewport=WIDTHS["1280"])
    page = context.new_page()
    page.goto(f"{server}/accounts/login/")
    audit.check(page, "login")

    page.fill("input[name=username]", "nobody")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_be_visible()
    audit.check(page, "login-refused")
    page.goto(f"{server}/no-such-page/")
    audit.check(page, "not-found")
    context.close()
    audit.assert_none()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_finds_nothing_serious_on_the_chat_pages(login, approver, output_dir, scheme):
    audit = Audit(output_dir, scheme)
    page = login("carol", "carol-password-1", viewport=WIDTHS["1280"])
    page.emulate_media(color_scheme=scheme)
    audit.check(page, "sessions-empty")

    session_id = new_session(page, "A long story")
    # An earlier answer in Markdown: a heading, a list, a table, a link and highlighted code.
    send(page, "show me some markdown")
    expect(chip(page, last_turn(session_id).pk)).to_have_attribute("data-status", "completed")
    send(page, "tell me a long story")
    turn = last_turn(session_id)
    wait_for_assistant_text(page, turn.pk, longer_than=40)
    audit.check(page, "session-streaming")

    page.click("#stop")
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    audit.check(page, "session-stopped")

    # A tool use opened to its arguments and result, and a sub-agent opened to its work.
    send(page, "what time is it?")
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    page.locator(f".turn[data-turn='{turn.pk}'] .tool-toggle").click()
    send(page, "delegate say hello")
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    page.locator(f".turn[data-turn='{turn.pk}'] .sub-agent-toggle").click()
    audit.check(page, "session-tools-opened")

    page.locator("#shortcuts-open").click()
    expect(page.locator("#shortcuts-dialog")).to_be_visible()
    audit.check(page, "shortcuts")
    page.keyboard.press("Escape")
    page.locator("#delete").click()
    expect(page.locator("#delete-dialog")).to_be_visible()
    audit.check(page, "delete-dialog")
    page.keyboard.press("Escape")

    page.click(".back")
    session_id = new_session(page, "Email Bob")
    send(page, "send an email to bob@example.com saying hi")
    turn = last_turn(session_id)
    expect(page.locator(f".turn[data-turn='{turn.pk}'] .approval-state")).to_contain_text(
        "Waiting for approval by"
    )
    audit.check(page, "session-waiting")

    page.click(".back")
    expect(page.locator("#sessions .chip")).to_have_count(2)
    audit.check(page, "sessions")

    page.get_by_role("link", name="Usage").click()
    expect(page.locator(".usage-chart")).to_be_visible()
    audit.check(page, "usage")
    audit.assert_none()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_finds_nothing_serious_in_the_approval_queue(
    browser, server, user, approver, output_dir, scheme
):
    audit = Audit(output_dir, scheme)
    made = requests_in_every_status(user, approver)
    context = browser.new_context(color_scheme=scheme, viewport=WIDTHS["1280"])
    page = context.new_page()
    page.goto(f"{server}/admin/login/?next=/admin/approvals_app/approvalrequest/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-password-1")
    page.click("input[type=submit]")
    expect(page.locator("#approval-queue-live")).to_have_attribute("data-state", "live")
    audit.check(page, "approval-queue")

    page.goto(f"{server}/admin/approvals_app/approvalrequest/{made['pending'].pk}/change/")
    expect(page.locator("#approval-decision")).to_be_visible()
    audit.check(page, "approval-change")
    context.close()
    audit.assert_none()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_finds_nothing_serious_in_the_approver_inbox(
    login, server, user, make_approver, output_dir, scheme
):
    audit = Audit(output_dir, scheme)
    erin = make_approver("erin")
    approval = ask_for_email(user)
    page = login("erin", "erin-pw-1", viewport=WIDTHS["1280"])
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{server}/approvals/")
    expect(page.locator("#inbox-connection")).to_have_attribute("data-state", "live")
    page.locator(f"#inbox-{approval.pk} summary", has_text="Edit arguments").click()
    audit.check(page, "inbox")

    page.goto(links.link_for(approval, erin.pk).replace(settings.SITE_URL, server))
    expect(page.locator(".link-form")).to_be_visible()
    audit.check(page, "decision-link")

    page.goto(f"{server}/sessions/{approval.turn.session_id}/")
    expect(page.locator("#read-only")).to_be_visible()
    audit.check(page, "read-only-conversation")
    audit.assert_none()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_stops_from_the_keyboard_and_shows_the_focus(login, approver, output_dir, scheme):
    page = login("carol", "carol-password-1")
    page.emulate_media(color_scheme=scheme)
    session_id = new_session(page, "Keyboard")
    for key in ("Enter", "Space"):
        send(page, "tell me a long story")
        turn = last_turn(session_id)
        wait_for_assistant_text(page, turn.pk, longer_than=40)
        page.focus("#message")
        assert tab_until(page, "#stop"), "Tab never reached Stop"
        page.screenshot(path=output_dir / f"stop-focused-{key}-{scheme}.png")
        page.keyboard.press(key)
        expect(chip(page, turn.pk)).to_have_attribute("data-status", TurnStatus.STOPPED)

    # The page with the most controls: an approval card (arguments editor, grant, reason,
    # Approve, Reject) next to the composer.
    send(page, "send an email to bob@example.com saying hi")
    expect(page.locator(".approval .approval-state")).to_contain_text("Waiting for approval by")
    page.locator(".approval button", has_text="Edit arguments").click()
    # A click in the top bar's corner: the next Tab starts from the top, as on a fresh page.
    # (Scrolled first: below the top bar the corner is the page's main area, where the
    # sessions sidebar begins.)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.mouse.click(1, 1)
    rings = focus_rings(page)
    unreached = REACHED - {ring["name"] for ring in rings}
    assert unreached == set(), rings
    faint = [f"{ring['name']}: {ring}" for ring in rings if not ring["shows"]]
    assert faint == [], "\n".join(faint)


def tab_until(page, selector: str) -> bool:
    """Presses Tab until ``selector`` has the focus, within a page's worth of controls."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return True
    return False


def focus_rings(page) -> list[dict]:
    """Tabs through the page once; for each control it reaches, whether its focus ring shows: at
    least 2 px wide, with a contrast of 3:1 or more against the page's background."""
    rings = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        ring = page.evaluate(FOCUS_RING)
        if ring is None or (rings and ring["control"] == rings[0]["control"]):
            break
        ring["shows"] = (
            ring["style"] not in ("none", "hidden")
            and ring["width"] >= 2
            and contrast(ring["color"], ring["background"]) >= 3
        )
        rings.append(ring)
    return rings


def contrast(css_colour: str, other: str) -> float:
    """WCAG's contrast ratio of two opaque ``rgb(r, g, b)`` colours."""
    lighter, darker = sorted((luminance(css_colour), luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def luminance(css_colour: str) -> float:
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3])
    linear = [
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
