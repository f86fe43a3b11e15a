"""No page a person reads shows a template's own syntax (``{#``, ``{%``, ``{{`` and their
closers): the session list, every admin page (each registered model's list and add form, and the
change form of a session with turns), the login page and the error pages. The chat page is
checked over every event kind by ``test_page_kept_live``."""

import pytest
from django.contrib import admin
from django.urls import reverse

from agentproj.vocabulary import TurnStatus
from sessions_app.core import sessions
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TEMPLATE_SYNTAX = ("{#", "#}", "{%", "%}", "{{", "}}")


def shown_syntax(response) -> list[str]:
    text = parse(response.content.decode()).visible_text
    return [syntax for syntax in TEMPLATE_SYNTAX if syntax in text]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-1")


def test_the_list_login_and_error_pages_show_no_template_syntax(client, user, other_user):
    assert shown_syntax(client.get("/accounts/login/")) == []
    client.force_login(user)
    sessions.session_create(owner=user, title="Mine")
    theirs = sessions.session_create(owner=other_user, title="Theirs")
    pages = {
        "list": client.get("/sessions/"),
        "search": client.get("/sessions/?q=Mine"),
        "not found": client.get(f"/sessions/{theirs.pk}/"),
        "unknown address": client.get("/no-such-page/"),
    }
    assert {name: r.status_code for name, r in pages.items()} == {
        "list": 200,
        "search": 200,
        "not found": 404,
        "unknown address": 404,
    }
    assert {name: shown_syntax(r) for name, r in pages.items()} == {name: [] for name in pages}


def test_every_admin_page_shows_no_template_syntax(
    client, superuser, llm, email_waiting_for_approval
):
    turn, approval = email_waiting_for_approval()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    client.force_login(superuser)
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        meta = model._meta
        urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
    urls.append(reverse("admin:approvals_app_approvalrequest_change", args=[approval.pk]))
    urls.append(reverse("admin:sessions_app_agentsession_change", args=[turn.session_id]))

    shown = {}
    for url in urls:
        response = client.get(url)
        # Some models cannot be added by hand (their add page refuses): that page is not shown.
        assert response.status_code in (200, 403), url
        if response.status_code == 200:
            shown[url] = shown_syntax(response)

    assert shown == {url: [] for url in shown}
    assert len(shown) > 10
