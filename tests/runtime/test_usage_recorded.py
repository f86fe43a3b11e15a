"""Every model call's tokens are recorded for the session's owner, agent and model: as the server
reported them, or estimated (and marked so) when it reported none or a stop cut the stream short;
a sub-agent's calls count for the person whose turn started it."""

import math

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import ModelPrice, Turn, UsageRecord
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REPORTED = {
    "prompt_tokens": 1234,
    "completion_tokens": 56,
    "total_tokens": 1290,
    "prompt_tokens_details": {"cached_tokens": 1000},
}


def answered(user, run_turn_in_thread, message: str = "hello") -> Turn:
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message=message, actor=user)
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    turn.refresh_from_db()
    return turn


def streamed_text(turn) -> str:
    message = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).first()
    return message.data.get("text", "") if message else ""


def test_it_records_the_tokens_the_server_reports_exactly(llm, user, run_turn_in_thread, client):
    ModelPrice.objects.create(model="agentproj-*", input_price=2, output_price=8, currency="USD")
    llm.reply("Hello there, how can I help?", usage=REPORTED)
    turn = answered(user, run_turn_in_thread)

    call = UsageRecord.objects.get(turn=turn)
    assert (call.input_tokens, call.output_tokens, call.cached_tokens) == (1234, 56, 1000)
    assert call.estimated is False
    assert call.user_id == user.pk
    assert call.agent_name == turn.agent_snapshot["name"]
    assert call.model == "agentproj-demo"
    assert turn.usage["prompt_tokens"] == 1234 and turn.usage["completion_tokens"] == 56
    assert "estimated" not in turn.usage
    # 1234 x 2 + 56 x 8 per million.
    assert turn.usage["cost"] == "0.002916"

    client.force_login(user)
    page = client.get(f"/sessions/{turn.session_id}/").content.decode()
    assert "1290 tokens" in page and "0.002916 USD" in page


def test_a_server_that_reports_no_usage_gets_an_estimate_marked_as_such(
    llm, user, run_turn_in_thread, client
):
    answer = "An answer from a server that keeps its token counts to itself."
    llm.reply(answer, usage=False)
    turn = answered(user, run_turn_in_thread)

    call = UsageRecord.objects.get(turn=turn)
    assert call.estimated is True
    assert call.output_tokens == math.ceil(len(answer) / 4)
    assert call.input_tokens > 0
    assert turn.usage["estimated"] is True

    client.force_login(user)
    page = client.get(f"/sessions/{turn.session_id}/").content.decode()
    assert f"about {call.input_tokens + call.output_tokens} tokens" in page


def test_a_stopped_streams_tokens_are_counted(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(turn.pk)
    wait_for(lambda: len(streamed_text(turn)) > 40)
    lifecycle.turn_request_cancel(session=session, actor=user)
    assert thread.join() == TurnStatus.STOPPED

    turn.refresh_from_db()
    kept = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    call = UsageRecord.objects.get(turn=turn)
    assert call.estimated is True
    assert call.output_tokens == math.ceil(len(kept) / 4) > 0
    assert turn.usage["completion_tokens"] == call.output_tokens
    assert turn.usage["estimated"] is True
    final = turn.events.filter(kind=EventKind.STATUS).last().data
    assert final["usage"]["completion_tokens"] == call.output_tokens


def test_a_sub_agents_calls_count_for_the_user_whose_turn_started_it(llm, user, run_turn_in_thread):
    parent = answered(user, run_turn_in_thread, message="delegate say hello")
    child = Turn.objects.get(parent=parent)
    calls = UsageRecord.objects.filter(turn__in=[parent, child])
    assert calls.filter(turn=child).exists()
    assert set(calls.values_list("user_id", flat=True)) == {user.pk}
