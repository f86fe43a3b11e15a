"""The MCP server form in a real browser: only the chosen transport's fields are shown, and
switching a server to the other transport saves it without the fields it left behind."""

import re

import pytest
from playwright.sync_api import expect

from sessions_app.models import McpServer, McpTransport
from tests.e2e import conftest as e2e

# The browser tests' fixtures: Chromium, and `manage.py serve` on this run's databases.
browser, chromium_path = e2e.browser, e2e.chromium_path
output_dir, server = e2e.output_dir, e2e.server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

ADD = "/admin/sessions_app/mcpserver/add/"


def test_the_form_shows_the_chosen_transports_fields(
    browser, server, django_user_model, output_dir
):
    django_user_model.objects.create_superuser("root", password="root-password-1")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(e2e.UI_TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server}/admin/login/?next={ADD}")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "root-password-1")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(re.escape(ADD)))
    stdio, http = (
        page.locator("fieldset.mcp-transport-stdio"),
        page.locator("fieldset.mcp-transport-http"),
    )

    # Nothing to fill in for a connection until the transport is chosen.
    expect(stdio).to_be_hidden()
    expect(http).to_be_hidden()

    page.fill("input[name=name]", "remote")
    page.select_option("select[name=transport]", McpTransport.HTTP)
    expect(http).to_be_visible()
    expect(stdio).to_be_hidden()
    page.fill("input[name=url]", "https://mcp.example.com/mcp")
    page.screenshot(path=output_dir / "http.png", full_page=True)

    # A command typed before switching back is not sent: the server would refuse it.
    page.select_option("select[name=transport]", McpTransport.STDIO)
    page.fill("input[name=command]", "remote-server")
    page.select_option("select[name=transport]", McpTransport.HTTP)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    remote = McpServer.objects.get(name="remote")
    assert (remote.transport, remote.url, remote.command) == (
        McpTransport.HTTP,
        "https://mcp.example.com/mcp",
        "",
    )

    # Its change page opens on its own transport; moved to stdio, it keeps no URL.
    page.goto(f"{server}/admin/sessions_app/mcpserver/{remote.pk}/change/")
    expect(http).to_be_visible()
    expect(stdio).to_be_hidden()
    page.select_option("select[name=transport]", McpTransport.STDIO)
    expect(http).to_be_hidden()
    page.fill("input[name=command]", "remote-server")
    page.screenshot(path=output_dir / "stdio.png", full_page=True)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    remote.refresh_from_db()
    assert (remote.transport, remote.command, remote.url) == (
        McpTransport.STDIO,
        "remote-server",
        "",
    )
    context.close()
