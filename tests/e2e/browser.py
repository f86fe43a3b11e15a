"""What the browser tests do on a page, in the words of a user."""

import re

from sessions_app.models import Turn


def new_session(page, title: str) -> str:
    """Starts a session from the list page and waits until it is live; returns its id."""
    page.fill("input[name=title]", title)
    page.click("#new-session")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))
    wait_live(page)
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def wait_live(page) -> None:
    page.wait_for_selector("#connection[data-state=live]")


def send(page, text: str, button: str = "#send") -> None:
    page.fill("#message", text)
    page.click(button)
    # The box empties once the server accepted the message.
    page.wait_for_function("() => document.querySelector('#message').value === ''")


def api_post(page, path: str, body: dict) -> tuple[int, dict]:
    """POSTs to the API with the page's login (session cookie and CSRF token), outside the page:
    like another tab or client of the same user."""
    origin = re.match(r"https?://[^/]+", page.url).group(0)
    cookies = {c["name"]: c["value"] for c in page.context.cookies(origin)}
    response = page.context.request.post(
        origin + path,
        data=body,
        headers={"X-CSRFToken": cookies["csrftoken"], "Origin": origin, "Referer": page.url},
    )
    return response.status, response.json()


def last_turn(session_id: str) -> Turn:
    return Turn.objects.filter(session_id=session_id, parent__isnull=True).latest("index")


def turn_locator(page, turn_id: int):
    return page.locator(f".turn[data-turn='{turn_id}']")


def chip(page, turn_id: int):
    return page.locator(f".turn[data-turn='{turn_id}'] > .turn-foot > .chip")


def assistant_bubbles(page, turn_id: int):
    return page.locator(f".turn[data-turn='{turn_id}'] > .turn-events > .msg.assistant .bubble")


def interrupt_notices(page, turn_id: int):
    return page.locator(f".turn[data-turn='{turn_id}'] > .turn-events > .notice.interrupt")


def words(text: str) -> str:
    """Text as a reader sees it, whitespace aside: rendered Markdown separates paragraphs
    differently from the raw text that streams in until the next rendering."""
    return " ".join(text.split())


def wait_for_assistant_text(page, turn_id: int, longer_than: int) -> str:
    """Waits until the turn's assistant text (its ``words``) is longer than ``longer_than``;
    returns it."""
    handle = page.wait_for_function(
        r"""([turn, length]) => {
            const nodes = document.querySelectorAll(
                `.turn[data-turn='${turn}'] > .turn-events > .msg.assistant .bubble`);
            const last = nodes[nodes.length - 1];
            const text = last ? last.textContent.replace(/\s+/g, " ").trim() : "";
            return text.length > length ? text : null;
        }""",
        arg=[turn_id, longer_than],
    )
    return handle.json_value()


def seen(page) -> dict:
    """What the page recorder saw: Stop button texts, chip statuses, assistant texts, in order."""
    return page.evaluate("() => window.__seen")
