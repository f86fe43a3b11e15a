"""Assistant answers render as Markdown on the page: the demo model's sample shows a table and a
highlighted code block whose copy button works, an answer carrying script renders harmlessly, and
the final message is exactly the server's rendering of the stored text."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind
from sessions_app.core.rendering import assistant_html
from sessions_app.demo_model import MARKDOWN_SAMPLE
from tests.e2e.browser import assistant_bubbles, chip, last_turn, new_session, send, wait_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

SAMPLE_HEADING_WHILE_STREAMING = """() => {
    const heading = document.querySelector(".msg.assistant.streaming .bubble.rendered h2");
    return heading && heading.textContent === "Markdown sample";
}"""
RECORD_ALERTS = "window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));"


def stored_text(turn) -> str:
    return turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]


def rendered(page, turn_id: int) -> str:
    """The bubble's HTML as the server sent it: without the copy buttons the page adds."""
    return assistant_bubbles(page, turn_id).evaluate(
        """(bubble) => {
            const copy = bubble.cloneNode(true);
            for (const block of copy.querySelectorAll(".code-block")) {
                block.replaceWith(block.querySelector("pre"));
            }
            return copy.innerHTML;
        }"""
    )


def test_it_renders_the_markdown_sample_with_a_working_copy_button(login, user, server):
    page = login("alice", "alice-password-1")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    session_id = new_session(page, "Markdown")

    send(page, "show me some markdown")
    turn = last_turn(session_id)
    bubble = assistant_bubbles(page, turn.pk)
    # While it streams the bubble already shows the server's rendering of the text so far; the
    # same element takes each new rendering and the final one, so nothing is redrawn whole.
    page.wait_for_function(SAMPLE_HEADING_WHILE_STREAMING)
    bubble.evaluate("(node) => { node.__kept = true; }")
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    expect(page.locator(".msg.assistant.streaming")).to_have_count(0)
    assert bubble.evaluate("(node) => node.__kept") is True
    expect(bubble.locator("h2")).to_have_text("Markdown sample")
    expect(bubble.locator("table tbody tr")).to_have_count(2)
    expect(bubble.locator("th.align-right")).to_have_text("Calls")
    link = bubble.locator("a", has_text="CommonMark")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    code = bubble.locator(".highlight pre")
    expect(code.locator("span.k", has_text="def")).to_be_visible()
    # Highlighted by highlight.css: a keyword has a colour of its own.
    keyword_colour = code.locator("span.k").first.evaluate("(n) => getComputedStyle(n).color")
    assert keyword_colour != code.evaluate("(n) => getComputedStyle(n).color")

    copy = bubble.locator("button.copy-code")
    expect(copy).to_have_count(1)
    copy.click()
    expect(copy).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert (
        copied
        == 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\nprint(greet("world"))\n'
    )

    text = stored_text(turn)
    assert text == MARKDOWN_SAMPLE
    assert rendered(page, turn.pk) == assistant_html(text)

    # A reload draws the same message on the server.
    page.reload()
    expect(assistant_bubbles(page, turn.pk).locator("button.copy-code")).to_have_count(1)
    assert rendered(page, turn.pk) == assistant_html(text)


def test_a_hostile_answer_renders_as_harmless_text(login, user):
    page = login("alice", "alice-password-1")
    page.context.add_init_script(RECORD_ALERTS)
    page.reload()
    session_id = new_session(page, "Hostile")

    # The demo model repeats the message, so its answer carries all of this.
    hostile = (
        "<script>alert(1)</script> <img src=x onerror=alert(2)> "
        "[click](javascript:alert(3)) <a href=javascript:alert(4) onclick=alert(5)>raw</a>"
    )
    send(page, hostile)
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    bubble = assistant_bubbles(page, turn.pk)
    expect(bubble).to_have_class("bubble rendered")
    expect(bubble).to_contain_text("<script>alert(1)</script>")
    expect(bubble.locator("script, img, a")).to_have_count(0)
    bubble.click()
    assert rendered(page, turn.pk) == assistant_html(stored_text(turn))
    assert page.evaluate("window.__alerts") == []


def test_a_reload_while_markdown_streams_loses_and_repeats_nothing(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Markdown reload")
    send(page, "markdown please")
    turn = last_turn(session_id)
    page.wait_for_function(SAMPLE_HEADING_WHILE_STREAMING)

    page.reload()
    wait_live(page)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    expect(page.locator(".msg.assistant")).to_have_count(1)
    assert rendered(page, turn.pk) == assistant_html(stored_text(turn))
    expect(assistant_bubbles(page, turn.pk).locator("h2")).to_have_count(1)
    expect(assistant_bubbles(page, turn.pk).locator("table")).to_have_count(1)
