"""The turn POST is the hot path of every message: its SQL stays a short, counted list."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.models import Turn
from tests.turn_states import new_session

# On commit as in production: the turn handed to the broker (a row of the ORM broker's queue on
# the embedded default) is part of the count.
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# The login's session and user, the session locked (with its agent), the owner locked (on
# PostgreSQL), the owner's budgets (none here: no sum of their usage follows), the session's line
# of turns and the owner's active turns in one read, the turn, the session's sequence, the two
# events, and the broker's row on the embedded default.
TURN_POST_QUERIES = 9

TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK", "COMMIT")


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in queries.captured_queries
        if not query["sql"].upper().startswith(TRANSACTION_CONTROL)
    ]


def test_a_message_to_an_idle_session_takes_at_most_nine_queries(client, user):
    client.force_login(user)
    session = new_session(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            f"/api/sessions/{session.pk}/turns/",
            {"message": "What time is it?"},
            content_type="application/json",
        )
    assert response.status_code == 202
    turn = Turn.objects.get(pk=response.json()["id"])
    assert turn.status == TurnStatus.QUEUED and turn.enqueued_at is not None
    assert list(turn.events.values_list("kind", flat=True).order_by("seq")) == [
        EventKind.USER_MESSAGE,
        EventKind.STATUS,
    ]
    sql = statements(queries)
    assert len(sql) <= TURN_POST_QUERIES, "\n".join(sql)


def test_a_message_to_someone_elses_session_is_not_found_and_writes_nothing(client, other_user):
    client.force_login(other_user)
    session = new_session(other_user)
    thief = type(other_user).objects.create_user("mallory", password="mallory-password-1")
    client.force_login(thief)
    response = client.post(
        f"/api/sessions/{session.pk}/turns/", {"message": "hi"}, content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert not Turn.objects.filter(session=session).exists()
