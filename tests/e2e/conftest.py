"""Browser tests: Debian's headless Chromium, driven by Playwright, against a real ``manage.py
serve`` (daphne, a django-q2 cluster and the demo model) on a free loopback port, sharing this
test run's databases. Consecutive browser tests of one test process share the serve while they
need the same environment (``tests.processes.SharedServe``).

Without /usr/bin/chromium these tests skip, saying how to install it; with REQUIRE_BROWSER=1 (CI)
they fail instead. Screenshots go to ``test-output/e2e/<test name>/``.
"""

import os
import re
from pathlib import Path

import pytest
from django.db import connections

from sessions_app.core.sessions import session_delete
from sessions_app.models import AgentSession
from tests.conftest import ROOT, subprocess_env
from tests.e2e.approvals import in_thread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
OUTPUT_ROOT = ROOT / "test-output" / "e2e"
SERVER_START_TIMEOUT = 90.0
SERVER_STOP_TIMEOUT = 40.0
# Slow enough that a story streams for half a minute: time to see it, reload it, stop it.
TOKEN_DELAY = "0.05"
# Generous bounds on how long a broken test waits; never a claim about speed.
UI_TIMEOUT_MS = 30_000

# Records what the page showed over time, so a test can assert that "Stopping…" appeared before
# "Stopped" however briefly it was on screen. Assistant text is kept as its words (browser.words).
RECORDER = r"""
window.__seen = {stop: [], chips: [], assistant: []};
document.addEventListener("DOMContentLoaded", () => {
  const push = (list, value) => { if (list[list.length - 1] !== value) list.push(value); };
  const record = () => {
    const stop = document.querySelector("#stop");
    if (stop) push(window.__seen.stop, stop.textContent.trim());
    for (const chip of document.querySelectorAll(".turn > .turn-foot > .chip")) {
      push(window.__seen.chips, chip.closest(".turn").dataset.turn + ":" + chip.dataset.status);
    }
    const bubbles = document.querySelectorAll(".msg.assistant .bubble");
    if (bubbles.length) {
      const text = bubbles[bubbles.length - 1].textContent.replace(/\s+/g, " ").trim();
      push(window.__seen.assistant, text);
    }
  };
  new MutationObserver(record).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
  record();
});
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serve_env(**env): extra environment for the e2e test's `serve` process"
    )


@pytest.fixture
def chromium_path() -> str:
    if not CHROMIUM.exists():
        message = (
            f"Chromium is not installed at {CHROMIUM}: browser tests need Debian's chromium "
            "package (`apt-get install -y chromium`, or `make browser`)."
        )
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " REQUIRE_BROWSER=1 makes this a failure.")
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture
def output_dir(request) -> Path:
    folder = OUTPUT_ROOT / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def server(request, transactional_db, shared_serve, chromium_path, output_dir):
    """``manage.py serve`` on this run's databases; yields its base URL. The demo model answers
    unless the test's ``serve_env`` marker says otherwise. The serve is shared with the browser
    tests this test process runs next (``SharedServe``): this test's sessions are deleted at its
    end, as a user would delete them, stopping what still runs; the rows are then emptied. The
    part of the serve's log written during the test is kept in its output folder."""
    marker = request.node.get_closest_marker("serve_env")
    env = subprocess_env(
        DEMO_LLM_TOKEN_DELAY=TOKEN_DELAY,
        AGENTPROJ_ADMIN_PASSWORD="e2e-admin-password",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    env.pop("LLM_BASE_URL", None)
    env.update(marker.kwargs if marker else {})
    base_url = shared_serve.url_for(env)
    log, start = shared_serve.log, shared_serve.log.stat().st_size
    try:
        yield base_url
    finally:
        with log.open("rb") as whole:
            whole.seek(start)
            (output_dir / "serve.log").write_bytes(whole.read())
        shared_serve.check_alive()
        in_thread(delete_every_session)


def delete_every_session() -> None:
    for session in AgentSession.objects.select_related("owner"):
        session_delete(session=session, actor=session.owner)


@pytest.fixture
def browser(chromium_path, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads are
    # plain synchronous code, so Django's async guard does not apply to them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()
            # Inside this block the test ran in the context Playwright switched to, with database
            # connections of its own; left open, they keep PostgreSQL from dropping the test
            # database at the end of the run.
            connections.close_all()


@pytest.fixture
def login(browser, server):
    """Returns a logged-in page (a fresh browser context per call) for a username/password."""
    contexts = []

    def log_in(username: str, password: str, *, viewport=None):
        context = browser.new_context(viewport=viewport or {"width": 1100, "height": 900})
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.add_init_script(RECORDER)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{server}/accounts/login/?next=/sessions/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server}/sessions/")
        return page

    yield log_in
    for context in contexts:
        context.close()
