"""A session picks its agent profile when it is created through the API; GET /api/agents/ lists
the profiles to pick from, and the API shows each session's agent."""

import pytest

from sessions_app.core import sessions
from sessions_app.models import Agent, AgentSession
from tests.turn_states import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def default_agent():
    return Agent.objects.get(is_default=True)


@pytest.fixture
def researcher():
    return Agent.objects.create(name="Researcher", instructions="Dig deep.", tools=["get_time"])


def test_it_lists_every_profile_by_name(api, default_agent, researcher):
    Agent.objects.create(name="Archivist", instructions="Keep records.")

    response = api.get("/api/agents/")

    assert response.status_code == 200
    assert response.json() == [
        {"id": Agent.objects.get(name="Archivist").pk, "name": "Archivist", "is_default": False},
        {"id": default_agent.pk, "name": "Default", "is_default": True},
        {"id": researcher.pk, "name": "Researcher", "is_default": False},
    ]


def test_it_lists_profiles_only_to_a_signed_in_user(client):
    assert_error(client.get("/api/agents/"), 403)


def test_it_creates_a_session_with_the_chosen_agent(api, user, researcher):
    response = api.post("/api/sessions/", {"title": "Study", "agent": researcher.pk}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["agent"] == {"id": researcher.pk, "name": "Researcher"}
    assert AgentSession.objects.get(pk=body["id"]).agent == researcher


def test_it_gives_a_session_without_a_choice_the_default_agent(api, default_agent):
    response = api.post("/api/sessions/", {}, format="json")

    assert response.status_code == 201
    assert response.json()["agent"] == {"id": default_agent.pk, "name": "Default"}


@pytest.mark.parametrize(
    "agent", [987654, "1", True, None], ids=["unknown", "text", "bool", "null"]
)
def test_it_refuses_an_agent_that_is_not_a_profiles_id(api, agent):
    response = api.post("/api/sessions/", {"agent": agent}, format="json")

    body = assert_error(response, 400, "invalid")
    assert "agent" in body["fields"]
    assert not AgentSession.objects.exists()


def test_it_shows_the_sessions_agent_in_the_list_and_the_detail(api, user, researcher):
    session = sessions.session_create(owner=user, agent=researcher)

    listed = api.get("/api/sessions/").json()["results"]
    detail = api.get(f"/api/sessions/{session.pk}/").json()

    assert listed[0]["agent"] == detail["agent"] == {"id": researcher.pk, "name": "Researcher"}
