"""The usage page: the person's own usage as a table and a bar chart drawn on the server as SVG
(nothing the CSP refuses), their budget and what is left of it, and the same as CSV; everyone's
for those allowed; linked from every page's navigation."""

import csv
import io
import re

import pytest

from agentproj.vocabulary import BudgetUnit
from sessions_app.models import Budget, UsageRecord
from tests.html_tree import parse

pytestmark = pytest.mark.django_db


@pytest.fixture
def spent(user, other_user):
    UsageRecord.objects.create(user=user, model="gpt-a", input_tokens=300, output_tokens=200)
    UsageRecord.objects.create(user=other_user, model="gpt-secret", input_tokens=5, output_tokens=5)


def test_the_page_shows_a_users_own_usage_chart_and_remaining_budget(client, user, spent):
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=2000, period="day")
    client.force_login(user)
    response = client.get("/usage/?group_by=model")
    assert response.status_code == 200
    page = response.content.decode()
    assert "gpt-a" in page and "gpt-secret" not in page
    assert "2,000 tokens a day (your own): 500 tokens used" in page
    assert "1,500 tokens left" in page

    svg = re.search(r"<svg class=\"usage-chart\".*?</svg>", page, re.S).group(0)
    assert svg.count('class="usage-input"') == 1
    assert "gpt-a: 300 tokens in, 200 out" in svg
    # Within the CSP: no inline style, no script, no event handler.
    assert "style=" not in page and "<script>" not in page and " on" not in svg
    assert 'href="/usage/"' in page


def test_the_csv_has_a_row_per_group(client, user, spent):
    client.force_login(user)
    response = client.get("/usage/usage.csv?group_by=model")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["model", "input_tokens", "output_tokens"]
    assert rows[1][:3] == ["gpt-a", "300", "200"]
    assert len(rows) == 2


def test_a_superuser_sees_everyone_by_user(client, user, spent, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(admin)
    page = client.get("/usage/?group_by=user").content.decode()
    assert "Everyone\N{RIGHT SINGLE QUOTATION MARK}s usage" in page
    assert ">alice</a>" in page and ">bob</a>" in page


def test_another_users_usage_is_forbidden_without_the_right(client, user, other_user, spent):
    client.force_login(user)
    assert client.get(f"/usage/?user={other_user.pk}").status_code == 403
    assert client.get(f"/usage/usage.csv?user={other_user.pk}").status_code == 403


def test_without_a_budget_the_page_says_so(client, user, spent):
    client.force_login(user)
    tree = parse(client.get("/usage/").content.decode())
    assert "No budget limits your usage." in tree.visible_text
