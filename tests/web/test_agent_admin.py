"""Superusers edit agent profiles in the admin; a profile's tools are a JSON list of built-in tool
names and MCP tool names or patterns, checked before it is saved."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from sessions_app.models import Agent

pytestmark = pytest.mark.django_db

ADD = reverse("admin:sessions_app_agent_add")
CHANGELIST = reverse("admin:sessions_app_agent_changelist")


def form(**fields) -> dict:
    return {
        "name": "Clock",
        "instructions": "Tell the time.",
        "model": "",
        "tools": '["get_time"]',
        "max_model_calls": "",
        **fields,
    }


@pytest.fixture
def admin_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="root-pw-1"))
    return client


def test_it_saves_built_in_tools_and_mcp_tool_patterns(admin_client):
    tools = '["get_time", "time__*", "files__read_file"]'

    response = admin_client.post(ADD, form(tools=tools, max_model_calls="5"))

    assert response.status_code == 302
    clock = Agent.objects.get(name="Clock")
    assert clock.tools == ["get_time", "time__*", "files__read_file"]
    assert (clock.max_model_calls, clock.all_tools, clock.is_default) == (5, False, False)


def test_it_saves_an_emptied_tool_list_as_no_tools(admin_client):
    assert admin_client.post(ADD, form(tools="")).status_code == 302
    assert Agent.objects.get(name="Clock").tools == []


@pytest.mark.parametrize(
    "tools",
    ['["get_time", "launch_rockets"]', '"get_time"', "[1]", '["time__"]', '["__*"]', "[not json"],
    ids=["unknown", "not-a-list", "not-text", "no-tool", "no-server", "invalid-json"],
)
def test_it_refuses_what_is_not_a_list_of_tool_names(admin_client, tools):
    response = admin_client.post(ADD, form(tools=tools))

    assert response.status_code == 200
    assert "tools" in response.context["adminform"].form.errors
    assert not Agent.objects.filter(name="Clock").exists()


def test_it_refuses_a_model_call_limit_below_one(admin_client):
    response = admin_client.post(ADD, form(max_model_calls="0"))

    assert "max_model_calls" in response.context["adminform"].form.errors


def test_it_moves_the_default_mark_to_the_chosen_profile(admin_client):
    previous = Agent.objects.get(is_default=True)
    # The form has no say: a ticked box sent anyway is ignored.
    assert admin_client.post(ADD, form(is_default="on")).status_code == 302
    clock = Agent.objects.get(name="Clock")
    assert not clock.is_default

    response = admin_client.post(
        CHANGELIST, {"action": "make_default", "_selected_action": [clock.pk]}, follow=True
    )

    assert "Clock is now the default profile." in [str(m) for m in response.context["messages"]]
    assert list(Agent.objects.filter(is_default=True)) == [clock]
    previous.refresh_from_db()
    assert not previous.is_default


def test_it_makes_one_profile_the_default_at_a_time(admin_client):
    previous = Agent.objects.get(is_default=True)
    clock = Agent.objects.create(name="Clock")

    admin_client.post(
        CHANGELIST, {"action": "make_default", "_selected_action": [clock.pk, previous.pk]}
    )

    assert list(Agent.objects.filter(is_default=True)) == [previous]


def test_it_keeps_the_default_profile_from_deletion(admin_client):
    default = Agent.objects.get(is_default=True)
    delete = reverse("admin:sessions_app_agent_delete", args=[default.pk])

    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Agent.objects.filter(pk=default.pk).exists()


def test_it_lets_only_superusers_edit_profiles(django_user_model):
    staff = django_user_model.objects.create_user("eve", password="eve-pw-1", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__model="agent"))
    client = Client()
    client.force_login(staff)
    default = Agent.objects.get(is_default=True)

    assert client.post(ADD, form()).status_code == 403
    change = reverse("admin:sessions_app_agent_change", args=[default.pk])
    assert client.post(change, form(name="Taken over")).status_code == 403
    assert not Agent.objects.filter(name__in=["Clock", "Taken over"]).exists()
