"""A user over budget who sends a message is told so plainly on the chat page, with the time
they can send again; the message stays in the box, nothing runs, and the usage page shows the
budget used up."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import BudgetUnit
from sessions_app.core import budgets
from sessions_app.models import Budget, Turn, UsageRecord
from tests.e2e.browser import new_session

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_the_chat_page_says_the_budget_is_used_up_and_when_it_resets(login, user, server):
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=2000, period="day")
    UsageRecord.objects.create(user=user, model="gpt-test", input_tokens=1800, output_tokens=200)
    resets_at = budgets.budget_state(user_id=user.pk).resets_at

    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Over budget")
    page.fill("#message", "tell me a story")
    page.click("#send")

    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("You have used up your usage budget.")
    expect(notice).to_contain_text(f"{resets_at:%Y-%m-%d %H:%M} UTC")
    expect(page.locator("#message")).to_have_value("tell me a story")
    assert not Turn.objects.filter(session_id=session_id).exists()

    page.click("nav >> text=Usage")
    expect(page.locator(".budget-line")).to_contain_text("0 tokens left")
    expect(page.locator(".budget-line")).to_contain_text("Used up")
