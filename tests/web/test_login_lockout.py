"""Brute-force protection on both login pages: after AXES_FAILURE_LIMIT wrong passwords for one
username from one address, even the right password is refused there, for a while."""

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]
RIGHT = "carol-password-1"


def attempt(client: Client, page: str, username: str, password: str, address="127.0.0.1"):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_it_refuses_the_right_password_after_ten_wrong_ones(page, approver):
    client = Client()
    for _ in range(10):
        attempt(client, page, "carol", "guess")

    response = attempt(client, page, "carol", RIGHT)

    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert not logged_in(client)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_it_locks_out_at_the_configured_limit(page, approver):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, page, "carol", "guess").status_code == 200
    assert attempt(client, page, "carol", RIGHT).status_code == 302
    assert logged_in(client)

    # A success starts the count again; a full run of failures locks out.
    locked = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(locked, page, "carol", "guess")
    assert attempt(locked, page, "carol", RIGHT).status_code == 429
    assert not logged_in(locked)


def test_it_locks_out_one_username_from_one_address_only(approver, user):
    for _ in range(10):
        attempt(Client(), "/accounts/login/", "carol", "guess")

    other_user_here = Client()
    same_user_elsewhere = Client()

    assert (
        attempt(other_user_here, "/accounts/login/", "alice", "alice-password-1").status_code == 302
    )
    assert logged_in(other_user_here)
    assert (
        attempt(same_user_elsewhere, "/accounts/login/", "carol", RIGHT, "192.0.2.7").status_code
        == 302
    )
    assert logged_in(same_user_elsewhere)
    assert attempt(Client(), "/admin/login/", "carol", RIGHT).status_code == 429


def test_it_lifts_the_lockout_after_the_cool_off(approver, settings):
    from axes.models import AccessAttempt

    for _ in range(10):
        attempt(Client(), "/accounts/login/", "carol", "guess")
    assert attempt(Client(), "/accounts/login/", "carol", RIGHT).status_code == 429

    # As if the cool-off had passed: axes compares each attempt's time with it.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.first().attempt_time - settings.AXES_COOLOFF_TIME
    )
    client = Client()

    assert attempt(client, "/accounts/login/", "carol", RIGHT).status_code == 302
    assert logged_in(client)
