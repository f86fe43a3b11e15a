"""``GET /metrics`` answers loopback clients, and others only with the metrics token; what it
answers is Prometheus text, never stored by a cache."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from agentproj.vocabulary import ACTIVE_STATUSES, TurnStatus
from tests.turn_states import assert_error, turn_in

pytestmark = pytest.mark.django_db

REMOTE = "203.0.113.7"
TOKEN = "metrics-token-for-tests"


def scrape(remote_addr: str, **headers: str):
    return Client().get("/metrics", REMOTE_ADDR=remote_addr, headers=headers)


def families(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def active_turns(response) -> dict[str, float]:
    return {
        sample.labels["status"]: sample.value
        for sample in families(response)["agentproj_turns_active"].samples
    }


@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1"])
def test_it_answers_a_loopback_client(loopback):
    response = scrape(loopback)

    assert "agentproj_turns_active" in families(response)
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    "proxy_header",
    [
        {"X-Forwarded-For": REMOTE},
        {"Forwarded": f"for={REMOTE}"},
        {"X-Real-IP": REMOTE},
    ],
)
def test_it_refuses_a_client_behind_a_proxy_on_the_machine_without_the_token(
    settings, proxy_header
):
    settings.METRICS_TOKEN = TOKEN

    assert_error(scrape("127.0.0.1", **proxy_header), 403, "permission_denied")
    assert scrape("127.0.0.1", Authorization=f"Bearer {TOKEN}", **proxy_header).status_code == 200


def test_it_refuses_a_remote_client_without_the_token(settings):
    settings.METRICS_TOKEN = TOKEN

    response = scrape(REMOTE)

    assert_error(response, 403, "permission_denied")
    assert b"agentproj_" not in response.content


def test_it_answers_a_remote_client_with_the_token(settings):
    settings.METRICS_TOKEN = TOKEN

    response = scrape(REMOTE, Authorization=f"Bearer {TOKEN}")

    assert "agentproj_turns_active" in families(response)


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}", "Bearer "],
)
def test_it_refuses_a_remote_client_with_a_wrong_token(settings, authorization):
    settings.METRICS_TOKEN = TOKEN

    assert_error(scrape(REMOTE, Authorization=authorization), 403, "permission_denied")


def test_without_a_token_set_no_remote_client_is_answered(settings):
    settings.METRICS_TOKEN = ""

    assert_error(scrape(REMOTE, Authorization="Bearer "), 403, "permission_denied")


def test_it_counts_the_active_turns_by_status_from_the_database(user):
    turn_in(TurnStatus.WAITING_FOR_APPROVAL, user)
    turn_in(TurnStatus.QUEUED, user)
    turn_in(TurnStatus.COMPLETED, user)

    counts = active_turns(scrape("127.0.0.1"))

    assert counts == {
        status: 1.0 if status in (TurnStatus.WAITING_FOR_APPROVAL, TurnStatus.QUEUED) else 0.0
        for status in ACTIVE_STATUSES
    }
