"""Console sign-in resists guessing (django-axes): repeated failures lock the pair of that
username and that client address for AIGW_LOGIN_LOCKOUT_MINUTES, and only that pair."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
ATTACKER = "203.0.113.66"
ADMIN_DESK = "198.51.100.7"
LOCKED_MESSAGE = "Too many failed sign-ins for this username from your address"


def sign_in(client, username: str, password: str, address: str, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def signed_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def guess(client, username: str, times: int, address: str = ATTACKER) -> None:
    for n in range(times):
        sign_in(client, username, f"wrong guess {n}", address)


def test_forty_wrong_passwords_lock_the_username_from_that_address_even_for_the_right_one(client):
    UserFactory(username="root", is_staff=True)
    guess(client, "root", 40)

    response = sign_in(client, "root", PASSWORD, ATTACKER)

    assert not signed_in(response)
    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED_MESSAGE in page
    assert "try again in 15 minutes or ask an admin to unlock it" in page
    assert '<form method="post">' in page and 'value="root"' in page  # the house login page, not a bare 403


def test_the_lock_starts_at_the_failure_limit_and_not_before(client, settings):
    UserFactory(username="ada")
    guess(client, "ada", settings.AIGW_LOGIN_FAILURE_LIMIT - 1)
    assert signed_in(sign_in(client, "ada", PASSWORD, ATTACKER))

    client.logout()
    guess(client, "ada", settings.AIGW_LOGIN_FAILURE_LIMIT)
    assert not signed_in(sign_in(client, "ada", PASSWORD, ATTACKER))


def test_a_wrong_password_below_the_limit_shows_the_ordinary_error(client):
    UserFactory(username="ada")
    response = sign_in(client, "ada", "nope", ATTACKER)
    assert response.status_code == 200
    assert LOCKED_MESSAGE not in response.content.decode()
    assert "Please enter a correct username and password" in response.content.decode()


def test_the_same_username_from_another_address_can_still_sign_in(client):
    UserFactory(username="root", is_staff=True)
    guess(client, "root", 40)

    assert signed_in(sign_in(client, "root", PASSWORD, ADMIN_DESK))


def test_another_username_from_the_locked_address_can_still_sign_in(client):
    UserFactory(username="root")
    UserFactory(username="bob")
    guess(client, "root", 40)

    assert signed_in(sign_in(client, "bob", PASSWORD, ATTACKER))


def test_the_lock_ends_after_the_stated_lock_time(client, settings):
    UserFactory(username="root")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        guess(client, "root", 40)
        traveller.shift(timedelta(minutes=settings.AIGW_LOGIN_LOCKOUT_MINUTES) - timedelta(seconds=5))
        assert not signed_in(sign_in(client, "root", PASSWORD, ATTACKER))  # still locked; not extended
        traveller.shift(timedelta(seconds=10))
        assert signed_in(sign_in(client, "root", PASSWORD, ATTACKER))


def test_an_admin_unlocks_the_username_with_axes_reset_username(client):
    UserFactory(username="root")
    guess(client, "root", 40)
    assert not signed_in(sign_in(client, "root", PASSWORD, ATTACKER))

    call_command("axes_reset_username", "root")

    assert signed_in(sign_in(client, "root", PASSWORD, ATTACKER))


def test_a_spoofed_x_forwarded_for_does_not_escape_the_lock_when_no_proxy_is_trusted(client):
    UserFactory(username="root")
    guess(client, "root", 40)

    response = sign_in(client, "root", PASSWORD, ATTACKER, HTTP_X_FORWARDED_FOR=ADMIN_DESK)

    assert not signed_in(response)


def test_behind_a_trusted_proxy_the_lock_follows_the_forwarded_client_address(client, settings):
    settings.AIGW_TRUSTED_PROXIES = ["10.0.0.0/8"]
    UserFactory(username="root")
    for n in range(40):
        sign_in(client, "root", f"wrong {n}", "10.0.0.2", HTTP_X_FORWARDED_FOR=ATTACKER)

    assert not signed_in(sign_in(client, "root", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR=ATTACKER))
    # The proxy's own address is not locked: another client behind it still signs in.
    assert signed_in(sign_in(client, "root", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR=ADMIN_DESK))
