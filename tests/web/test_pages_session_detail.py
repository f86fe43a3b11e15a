"""/sessions/<id>/ draws the session's timeline on the server: what a browser shows before any
script runs, or with JavaScript off."""

import pytest
from django.utils import timezone

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.conftest import run_turn_to_end, wait_for
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MARKDOWN_ANSWER = "# Plan\n\n- first step\n- second step\n\n```python\nprint('hi')\n```"


def words(text: str) -> str:
    return " ".join(text.split())


def open_page(client, user, session):
    client.force_login(user)
    response = client.get(f"/sessions/{session.pk}/")
    assert response.status_code == 200
    return parse(response.content.decode())


def finished_session(llm, user, run_turn_in_thread):
    """A completed turn with a Markdown answer, then a turn stopped while the story streamed."""
    session = sessions.session_create(owner=user, title="Finished")
    llm.reply(MARKDOWN_ANSWER)
    completed = lifecycle.turn_start(session=session, message="make a plan", actor=user)
    assert run_turn_to_end(completed.pk) == TurnStatus.COMPLETED
    stopped = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(stopped.pk)
    wait_for(lambda: stopped.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())
    lifecycle.turn_request_cancel(session=session, actor=user)
    assert thread.join() == TurnStatus.STOPPED
    return session, completed, stopped


TEMPLATE_SYNTAX = ("{#", "#}", "{%", "%}", "{{", "}}")


def test_the_page_a_person_reads_holds_no_template_syntax(client, llm, user, run_turn_in_thread):
    session, _, _ = finished_session(llm, user, run_turn_in_thread)
    text = open_page(client, user, session).visible_text

    assert "Plan" in text and "Stopped by the user." in text
    assert [syntax for syntax in TEMPLATE_SYNTAX if syntax in text] == []


def test_it_answers_404_for_another_users_session(client, user, other_user):
    session = sessions.session_create(owner=other_user, title="Bob's")
    client.force_login(user)
    assert client.get(f"/sessions/{session.pk}/").status_code == 404


def test_the_html_holds_the_timeline_of_a_finished_session(client, llm, user, run_turn_in_thread):
    session, completed, stopped = finished_session(llm, user, run_turn_in_thread)
    page = open_page(client, user, session)

    timeline = page.by_id("timeline")
    assert [t.attrs["data-turn"] for t in timeline.child_elements("turn")] == [
        str(completed.pk),
        str(stopped.pk),
    ]
    assert page.by_id("empty").attrs.get("hidden") is not None
    session.refresh_from_db()
    assert page.by_id("chat").attrs["data-last-seq"] == str(session.last_seq)

    # The stopped turn: its message, the text streamed until the stop, one notice, a grey chip.
    events = page.by_id(f"turn-{stopped.pk}-events")
    assert [b.text for b in events.by_class("user")[0].by_class("bubble")] == ["tell me a story"]
    # Each message says when it was written.
    [written] = [e for e in events.by_class("user")[0].elements() if e.tag == "time"]
    assert written.attrs["datetime"].startswith(f"{timezone.now():%Y-%m-%d}")
    kept = stopped.events.get(kind=EventKind.ASSISTANT_MESSAGE).data
    assert kept["streaming"] is False and kept["text"]
    [answer] = events.by_class("msg", "assistant")
    assert answer.attrs["data-streaming"] == "0"
    [bubble] = answer.by_class("bubble")
    assert words(bubble.text) == words(kept["text"])
    notices = events.child_elements("notice", "interrupt")
    assert [words(n.text) for n in notices] == ["Stopped by the user."]
    foot = page.by_id(f"turn-{stopped.pk}-foot")
    [chip] = foot.by_class("chip")
    assert (chip.attrs["data-status"], words(chip.text)) == ("stopped", "Stopped")
    assert "data-active" not in foot.attrs
    assert [words(b.text) for b in foot.by_class("turn-actions")[0].elements()] == [
        "Edit and resend",
        "Regenerate",
    ]

    # The completed turn: its answer as Markdown, what it cost, and Regenerate (the page shows
    # it on the last turn only).
    [rendered] = page.by_id(f"turn-{completed.pk}-events").by_class("bubble", "rendered")
    assert [h.text for h in rendered.elements() if h.tag == "h1"] == ["Plan"]
    assert [li.text for li in rendered.elements() if li.tag == "li"] == [
        "first step",
        "second step",
    ]
    assert rendered.by_class("highlight")
    foot = page.by_id(f"turn-{completed.pk}-foot")
    assert words(foot.by_class("chip")[0].text) == "Completed"
    completed.refresh_from_db()
    tokens = completed.usage["prompt_tokens"] + completed.usage["completion_tokens"]
    usage = words(foot.by_class("turn-usage")[0].text)
    assert usage.startswith(f"{tokens} tokens · ") and usage.endswith(" s")
    assert [words(b.text) for b in foot.by_class("turn-actions")[0].elements()] == ["Regenerate"]


def test_an_active_turn_is_drawn_active_with_its_message(client, user):
    session = sessions.session_create(owner=user, title="Mine")
    turn = lifecycle.turn_start(session=session, message="hello <b>there</b>", actor=user)
    page = open_page(client, user, session)

    [bubble] = page.by_id(f"turn-{turn.pk}-events").by_class("bubble")
    # A user's message is plain text, never markup.
    assert bubble.text == "hello <b>there</b>" and not list(bubble.elements())
    foot = page.by_id(f"turn-{turn.pk}-foot")
    assert "data-active" in foot.attrs and "data-stoppable" in foot.attrs
    assert words(foot.by_class("chip")[0].text) == "Queued"
    page.by_id("stop")
    page.by_id("send")
    assert page.by_id("vocabulary").tag == "script"


def test_a_waiting_approval_card_offers_its_controls_to_approvers_only(
    client, user, approver, email_waiting_for_approval
):
    turn, approval = email_waiting_for_approval()
    owner_page = open_page(client, user, turn.session)
    [card] = owner_page.by_id(f"turn-{turn.pk}-events").by_class("approval")
    assert card.attrs["data-state"] == "pending"
    waiting = words(owner_page.by_id(f"approval-{approval.pk}-state").text)
    assert waiting.startswith("Waiting for approval by an approver · expires ")
    assert not card.by_class("approval-actions")

    turn.session.owner = approver
    turn.session.save(update_fields=["owner"])
    approver_page = open_page(client, approver, turn.session)
    [card] = approver_page.by_id(f"turn-{turn.pk}-events").by_class("approval")
    [actions] = card.by_class("approval-actions")
    assert "hidden" not in actions.attrs
    assert [words(b.text) for b in actions.elements() if b.tag == "button"] == [
        "Edit arguments",
        "Approve",
        "Reject",
    ]
