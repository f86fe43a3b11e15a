"""An assistant message's Markdown is rendered once, when its text is final, and stored: the
events API, the chat page and a socket's replay serve that HTML and render nothing, however
often they are read. Messages written before the HTML was stored get theirs from the migration.
"""

from collections import Counter

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import leases, lifecycle, rendering
from sessions_app.core.rendering import assistant_html
from sessions_app.models import TimelineEvent
from tests.conftest import run_turn_to_end
from tests.sockets import resumed_session_socket, session_cookie
from tests.turn_states import new_session, running_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

READS = 3
TOOL_CALL = {"name": "get_time", "arguments": {"timezone": "UTC"}}


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The texts the Markdown renderer is called with, in order; it still renders them."""
    calls: list[str] = []
    render = rendering.assistant_html

    def counting(text: str) -> str:
        calls.append(text)
        return render(text)

    monkeypatch.setattr(rendering, "assistant_html", counting)
    return calls


def final_messages(session) -> list[TimelineEvent]:
    return list(session.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq"))


def api_html(client, session) -> dict[int, str]:
    response = client.get(f"/api/sessions/{session.pk}/events/")
    assert response.status_code == 200, response.content
    return {e["seq"]: e["html"] for e in response.json()["results"] if "html" in e}


def socket_html(session, cookie: bytes) -> dict[int, str]:
    async def replay() -> dict[int, str]:
        html = {}
        async with resumed_session_socket(session.pk, cookie) as socket:
            while (message := await socket.receive_json_from(timeout=5))["type"] != "replayed":
                if "html" in message["event"]:
                    html[message["event"]["seq"]] = message["event"]["html"]
        return html

    return async_to_sync(replay)()


def test_it_renders_each_final_message_once_and_no_read_renders_again(llm, user, api, renders):
    llm.reply("Let me **look** at the clock.", tool_call=TOOL_CALL)
    llm.reply("It is *noon* somewhere:\n\n```python\nprint('noon')\n```")
    session = new_session(user)
    turn = lifecycle.turn_start(session=session, message="what time is it?", actor=user)
    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    messages = final_messages(session)
    assert [m.data["streaming"] for m in messages] == [False, False]
    assert Counter(renders) == Counter(m.data["text"] for m in messages)
    rendered = len(renders)

    # The renderer itself, not the counting one: these calls are the test's own.
    expected = {m.seq: assistant_html(m.data["text"]) for m in messages}
    page = Client()
    page.force_login(user)
    cookie = session_cookie(user)
    for _ in range(READS):
        assert api_html(api, session) == expected
        assert socket_html(session, cookie) == expected
        body = page.get(f"/sessions/{session.pk}/").content.decode()
        assert all(html in body for html in expected.values())

    assert len(renders) == rendered
    assert '<div class="highlight">' in expected[messages[1].seq]


def test_it_renders_a_stopped_answer_once_when_its_stream_ends(user, api, renders):
    turn, lease = running_turn(user)
    event_id = None
    for text in ("Once", "Once upon", "Once upon a *time*"):
        event_id = leases.turn_save_progress(
            turn_id=turn.pk, lease_token=lease, assistant_event_id=event_id, assistant_text=text
        ).pk
    assert renders == []

    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease)
    assert renders == ["Once upon a *time*"]

    for _ in range(READS):
        served = api_html(api, turn.session)
    assert renders == ["Once upon a *time*"]
    [message] = final_messages(turn.session)
    assert served == {message.seq: "<p>Once upon a <em>time</em></p>"}


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def test_the_migration_renders_the_final_messages_written_before_it(user):
    before = [("sessions_app", "0009_context_trimmed_and_agent_window")]
    old = migrate(before).loader.project_state(before).apps
    session = old.get_model("sessions_app", "AgentSession").objects.create(
        owner_id=user.pk, agent_id=old.get_model("sessions_app", "Agent").objects.get().pk
    )
    events = old.get_model("sessions_app", "TimelineEvent").objects
    final = events.create(
        session_id=session.pk, seq=1, kind="assistant_message", data={"text": "*Done*"}
    )
    streaming = events.create(
        session_id=session.pk,
        seq=2,
        kind="assistant_message",
        data={"text": "*Go", "streaming": True},
    )
    said = events.create(session_id=session.pk, seq=3, kind="user_message", data={"text": "*x*"})

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    stored = dict(TimelineEvent.objects.values_list("pk", "html"))
    assert stored == {final.pk: "<p><em>Done</em></p>", streaming.pk: None, said.pk: None}
