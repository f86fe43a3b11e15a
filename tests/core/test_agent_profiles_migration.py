"""Migrating creates the default agent profile, with the prompt, tools and limits every session
had before profiles existed, and gives it the sessions and turns already there."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import CreateModel

from sessions_app.models import Agent, AgentSession, Turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

FIXED_PROMPT = (
    "You are a helpful assistant in agentproj. Use the tools you are given when they help. "
    "Some tools need a human's approval; if a call is rejected, say so and carry on."
)


def before_profiles() -> list[tuple[str, str]]:
    """The sessions_app migration the one that creates agent profiles follows, found by what it
    does rather than by its number."""
    (creates_agent,) = (
        migration
        for (app, _), migration in MigrationLoader(connection).disk_migrations.items()
        if app == "sessions_app"
        and any(isinstance(op, CreateModel) and op.name == "Agent" for op in migration.operations)
    )
    return [dep for dep in creates_agent.dependencies if dep[0] == "sessions_app"]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def test_it_creates_the_default_profile_for_existing_sessions_and_turns():
    before = before_profiles()
    executor = migrate(before)
    old = executor.loader.project_state(before).apps
    owner = old.get_model("auth", "User").objects.create(username="early")
    session = old.get_model("sessions_app", "AgentSession").objects.create(
        owner_id=owner.pk, title="From before"
    )
    old.get_model("sessions_app", "Turn").objects.create(
        session_id=session.pk, index=1, user_message="hello", status="completed"
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    default = Agent.objects.get()
    assert (default.name, default.is_default) == ("Default", True)
    assert default.instructions == FIXED_PROMPT
    assert (default.model, default.max_model_calls) == ("", None)
    assert (default.all_tools, default.tools) == (True, [])
    assert AgentSession.objects.get(pk=session.pk).agent == default
    turn = Turn.objects.get(session_id=session.pk)
    assert turn.agent == default
    assert turn.agent_snapshot == {
        "id": default.pk,
        "name": "Default",
        "instructions": FIXED_PROMPT,
        "model": "",
        "tools": [],
        "all_tools": True,
        "max_model_calls": None,
    }
