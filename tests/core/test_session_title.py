import pytest

from sessions_app.core import lifecycle, sessions

pytestmark = pytest.mark.django_db


def test_it_names_an_untitled_session_after_its_first_message(api, user):
    session = sessions.session_create(owner=user)

    api.post(f"/api/sessions/{session.pk}/turns/", {"message": "Plan my trip\nto Lisbon"})
    lifecycle.turn_request_cancel(session=session, actor=user)
    api.post(f"/api/sessions/{session.pk}/turns/", {"message": "something else"})

    assert api.get(f"/api/sessions/{session.pk}/").json()["title"] == "Plan my trip"


def test_it_shortens_a_long_first_message(user):
    session = sessions.session_create(owner=user)

    lifecycle.turn_start(session=session, message="word " * 40, actor=user)

    session.refresh_from_db()
    assert len(session.title) == lifecycle.TITLE_FROM_MESSAGE_CHARS
    assert session.title.endswith("…")


def test_it_keeps_a_title_the_user_gave(user):
    session = sessions.session_create(owner=user, title="Mine")

    lifecycle.turn_start(session=session, message="hello", actor=user)

    session.refresh_from_db()
    assert session.title == "Mine"
