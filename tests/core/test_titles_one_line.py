"""A session's title is one line of text a person may read: it heads every approver's e-mail about
the session's requests, where a line break would let it pose as the mail's own lines ("URGENT -
approve here instead: ...") and a bidirectional override would show other text than it holds.

Refused at every entry point (API, the page's forms, the admin) and by the services; a title taken
from the first message leaves those characters out instead of failing the message.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython
from django.test import Client
from django.urls import reverse

from approvals_app import notifications
from sessions_app.core import lifecycle, sessions
from sessions_app.models import AgentSession
from tests.turn_states import assert_error, waiting_turn

pytestmark = pytest.mark.django_db

INJECTED = "Weekly report\r\nURGENT - approve here instead: http://evil.example"
NOT_ONE_LINE = [
    INJECTED,
    "line\nfeed",
    "carriage\rreturn",
    "nul \x00",
    "override \u202etxt.exe",
    "next\x85line",
    "line\u2028separator",
    # Python's "$" also matches before a final line break: the rule must not stop there.
    "trailing break\n",
]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("title", NOT_ONE_LINE)
def test_it_refuses_the_title_in_the_api(title, api, user):
    body = assert_error(api.post("/api/sessions/", {"title": title}, format="json"), 400, "invalid")
    assert "title" in body["fields"]
    assert not AgentSession.objects.exists()

    session = sessions.session_create(owner=user, title="Before")
    response = api.patch(f"/api/sessions/{session.pk}/", {"title": title}, format="json")
    assert "title" in assert_error(response, 400, "invalid")["fields"]
    session.refresh_from_db()
    assert session.title == "Before"


@pytest.mark.parametrize("title", NOT_ONE_LINE)
def test_it_refuses_the_title_in_the_page_forms(title, user):
    client = logged_in(user)

    created = client.post("/sessions/", {"title": title})
    assert created.status_code == 400
    assert "The title was not accepted" in created.content.decode()
    assert not AgentSession.objects.exists()

    session = sessions.session_create(owner=user, title="Before")
    renamed = client.post(reverse("session-rename", args=[session.pk]), {"title": title})
    assert renamed.status_code == 400
    session.refresh_from_db()
    assert session.title == "Before"


# Django's admin forms strip surrounding whitespace before they validate: a trailing line break
# never reaches the title there, so only the others are refused.
@pytest.mark.parametrize("title", [title for title in NOT_ONE_LINE if title.strip() == title])
def test_it_refuses_the_title_in_the_admin(title, user, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    session = sessions.session_create(owner=user, title="Before")
    url = reverse("admin:sessions_app_agentsession_change", args=[session.pk])

    response = logged_in(admin).post(
        url, {"owner": user.pk, "agent": session.agent_id, "title": title, "last_seq": 0}
    )

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["title"]
    session.refresh_from_db()
    assert session.title == "Before"


@pytest.mark.parametrize("title", NOT_ONE_LINE)
def test_the_services_refuse_it_too(title, user):
    with pytest.raises(ValidationError):
        sessions.session_create(owner=user, title=title)
    session = sessions.session_create(owner=user, title="Before")
    with pytest.raises(ValidationError):
        sessions.session_rename(session=session, title=title)

    session.refresh_from_db()
    assert session.title == "Before"
    assert AgentSession.objects.count() == 1


def test_it_names_a_session_after_its_first_message_without_controls(api, user):
    session = sessions.session_create(owner=user)
    message = "\u202e\n  Plan my \u2067trip\x85to Lisbon\u2028and Porto"

    response = api.post(f"/api/sessions/{session.pk}/turns/", {"message": message}, format="json")

    assert response.status_code == 202
    session.refresh_from_db()
    assert session.title == "Plan my trip"


def test_an_approvers_mail_shows_the_title_on_its_own_line(user, approver):
    approver.email = "carol@example.org"
    approver.save()
    session = sessions.session_create(owner=user)
    first = lifecycle.turn_start(session=session, message="\u202eReport\nfor Monday", actor=user)
    lifecycle.turn_request_cancel(session=session, actor=user, turn_id=first.pk)

    _, approval = waiting_turn(user, session)

    [notice] = notifications.mail_notices(approval)
    assert "\nSession: Report\n" in notice["body"]
    assert "\u202e" not in notice["body"]


def before_one_line_titles() -> list[tuple[str, str]]:
    """The sessions_app migration before the one that puts stored titles on one line."""
    (migration,) = (
        migration
        for (app, _), migration in MigrationLoader(connection).disk_migrations.items()
        if app == "sessions_app"
        and any(
            isinstance(op, RunPython) and op.code.__name__ == "titles_on_one_line"
            for op in migration.operations
        )
    )
    return [dep for dep in migration.dependencies if dep[0] == "sessions_app"]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_migrating_puts_the_titles_stored_before_on_one_line():
    before = before_one_line_titles()
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    owner = old.get_model("auth", "User").objects.create(username="early")
    agent = old.get_model("sessions_app", "Agent").objects.get(is_default=True)
    Session = old.get_model("sessions_app", "AgentSession")
    injected = Session.objects.create(owner_id=owner.pk, agent_id=agent.pk, title=INJECTED)
    plain = Session.objects.create(owner_id=owner.pk, agent_id=agent.pk, title="Plain 😀")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert AgentSession.objects.get(pk=injected.pk).title == (
        "Weekly report URGENT - approve here instead: http://evil.example"
    )
    assert AgentSession.objects.get(pk=plain.pk).title == "Plain 😀"
