"""The new-session form offers every agent profile, the default one chosen; the session pages
name each session's agent."""

import pytest

from sessions_app.core import sessions
from sessions_app.models import Agent, AgentSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def default_agent():
    return Agent.objects.get(is_default=True)


@pytest.fixture
def researcher():
    return Agent.objects.create(name="Researcher", instructions="Dig deep.", tools=["get_time"])


def test_it_offers_every_profile_on_the_new_session_form(client, user, default_agent, researcher):
    client.force_login(user)

    page = client.get("/sessions/").content.decode()

    form = page[page.index('class="row new-session"') :].split("</form>")[0]
    assert f'<option value="{default_agent.pk}" selected>Default</option>' in form
    assert f'<option value="{researcher.pk}">Researcher</option>' in form


def test_it_starts_a_session_with_the_agent_chosen_on_the_page(client, user, researcher):
    client.force_login(user)

    response = client.post("/sessions/", {"title": "", "agent": researcher.pk})

    session = AgentSession.objects.get(owner=user)
    assert response.status_code == 302
    assert session.agent == researcher


def test_it_refuses_an_unknown_agent_on_the_page(client, user):
    client.force_login(user)

    response = client.post("/sessions/", {"title": "", "agent": 987654})

    assert response.status_code == 400
    assert 'id="agent-errors"' in response.content.decode()
    assert not AgentSession.objects.exists()


def test_it_names_the_agent_on_the_session_pages(client, user, researcher):
    session = sessions.session_create(owner=user, title="Study", agent=researcher)
    client.force_login(user)

    listed = client.get("/sessions/").content.decode()
    detail = client.get(f"/sessions/{session.pk}/").content.decode()

    row = listed[listed.index(f'data-session="{session.pk}"') :].split("</li>")[0]
    assert "Researcher" in row
    assert 'id="agent">Agent: Researcher<' in detail
