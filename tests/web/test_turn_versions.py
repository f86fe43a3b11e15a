"""Versions of a turn: POST /api/sessions/<id>/turns/<turn>/regenerate/ answers the last message
again as the turn's next version, POST .../show/ picks the version shown, and the next turn's
model input holds the shown version's answer only."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import run_turn_to_end
from tests.turn_states import assert_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

S = TurnStatus


def regenerate(api, turn):
    return api.post(f"/api/sessions/{turn.session_id}/turns/{turn.pk}/regenerate/")


def show(api, turn):
    return api.post(f"/api/sessions/{turn.session_id}/turns/{turn.pk}/show/")


def answered(llm, user, message: str, answer: str, session=None) -> Turn:
    session = session or sessions.session_create(owner=user)
    llm.reply(answer)
    turn = lifecycle.turn_start(session=session, message=message, actor=user)
    assert run_turn_to_end(turn.pk) == S.COMPLETED
    turn.refresh_from_db()
    return turn


def regenerated(api, llm, turn: Turn, answer: str) -> Turn:
    llm.reply(answer)
    response = regenerate(api, turn)
    assert response.status_code == 202, response.content
    version = Turn.objects.get(pk=response.json()["id"])
    assert run_turn_to_end(version.pk) == S.COMPLETED
    version.refresh_from_db()
    return version


def versions_told(turn: Turn) -> list[dict]:
    return list(
        turn.session.events.filter(kind=EventKind.VERSION_SHOWN)
        .order_by("seq")
        .values_list("data", flat=True)
    )


def test_it_makes_version_2_of_a_completed_last_turn(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue.")

    response = regenerate(api, first)

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["user_message"]) == ("queued", "name a colour")
    assert (body["version_of"], body["shown"]) == (first.pk, True)
    first.refresh_from_db()
    assert first.shown is False
    second = Turn.objects.get(pk=body["id"])
    assert versions_told(second) == [{"versions": [first.pk, second.pk], "shown": second.pk}]
    # A version of a version belongs to the first turn's group.
    assert run_turn_to_end(second.pk) == S.COMPLETED
    third = regenerated(api, llm, second, "Green.")
    assert third.version_of_id == first.pk
    assert list(Turn.objects.filter(shown=True).values_list("pk", flat=True)) == [third.pk]


def test_a_stopped_or_failed_last_turn_is_regenerated_too(api, llm, user, settings):
    session = sessions.session_create(owner=user)
    stopped = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    lifecycle.turn_request_cancel(session=session, actor=user)
    llm.fail(500, times=settings.LLM_MAX_RETRIES + 1)

    response = regenerate(api, stopped)

    assert response.status_code == 202
    failed = Turn.objects.get(pk=response.json()["id"])
    assert run_turn_to_end(failed.pk) == S.FAILED
    assert regenerate(api, failed).status_code == 202


def test_show_switches_the_version_shown(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue.")
    second = regenerated(api, llm, first, "Red.")

    response = show(api, first)

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["shown"]) == (first.pk, True)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.shown, second.shown) == (True, False)
    assert versions_told(first)[-1] == {"versions": [first.pk, second.pk], "shown": first.pk}
    # Showing what is shown changes nothing, and tells nothing.
    assert show(api, first).status_code == 200
    assert len(versions_told(first)) == 2


def test_it_is_refused_while_a_turn_is_active(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue.")
    second = regenerated(api, llm, first, "Red.")
    waiting = lifecycle.turn_start(session=first.session, message="and another", actor=user)

    assert_error(regenerate(api, waiting), 409, "session_busy")
    assert_error(show(api, first), 409, "session_busy")
    lifecycle.turn_request_cancel(session=first.session, actor=user)
    second.refresh_from_db()
    assert second.shown is True
    assert Turn.objects.filter(session=first.session).count() == 3


def test_a_turn_that_is_not_the_last_is_not_regenerated(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue.")
    answered(llm, user, "and a fruit", "A pear.", session=first.session)

    assert_error(regenerate(api, first), 409, "not_last_turn")
    assert Turn.objects.filter(session=first.session).count() == 2


def test_another_users_turn_is_not_found(api, llm, other_user):
    theirs = answered(llm, other_user, "name a colour", "Blue.")

    assert_error(regenerate(api, theirs), 404, "not_found")
    assert_error(show(api, theirs), 404, "not_found")


def model_input(llm) -> str:
    return "\n".join(str(m.get("content")) for m in llm.requests[-1].body["messages"])


def test_the_next_turn_sees_the_shown_version_only(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue is the first answer.")
    second = regenerated(api, llm, first, "Red is the second answer.")
    assert show(api, first).status_code == 200

    answered(llm, user, "why that one?", "Because.", session=first.session)

    sent = model_input(llm)
    assert "Blue is the first answer." in sent
    assert "Red is the second answer." not in sent
    assert sent.count("name a colour") == 1

    # The regenerated turn itself never saw the version it replaced.
    regenerated_input = "\n".join(str(m.get("content")) for m in llm.requests[1].body["messages"])
    assert "Blue is the first answer." not in regenerated_input
    assert second.version_of_id == first.pk


def test_an_edited_message_is_a_new_version_of_its_turn(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue.")
    llm.reply("A pear.")

    response = api.post(
        f"/api/sessions/{first.session_id}/turns/{first.pk}/regenerate/",
        {"message": "  name a fruit  "},
        format="json",
    )

    assert response.status_code == 202
    edited = Turn.objects.get(pk=response.json()["id"])
    assert (edited.user_message, edited.version_of_id, edited.shown) == (
        "name a fruit",
        first.pk,
        True,
    )
    assert run_turn_to_end(edited.pk) == S.COMPLETED
    answered(llm, user, "why?", "Because.", session=first.session)
    sent = model_input(llm)
    assert "name a fruit" in sent and "A pear." in sent
    assert "name a colour" not in sent and "Blue." not in sent


def test_an_edit_keeps_to_the_rules_of_a_message(api, llm, user):
    first = answered(llm, user, "name a colour", "Blue.")
    url = f"/api/sessions/{first.session_id}/turns/{first.pk}/regenerate/"

    for refused in ("   ", "escape \x1b[0m", 5):
        assert_error(api.post(url, {"message": refused}, format="json"), 400, "invalid")
    assert Turn.objects.filter(session=first.session).count() == 1
