"""Logins: lockout after repeated failures (django-axes), per username and client address."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from tests.conftest import require_env
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    """Every login here checks a password, many times per test: a cheap hasher keeps that fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def lucy(atlas):
    """A local account (not in the directory) with the password "leasehold"."""
    return UserFactory(username="lucy", groups=["team-atlas"])


def web_login(client, username: str, password: str = "leasehold", **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def logged_in(client) -> bool:
    return client.get("/requests/").status_code == 200


def cool_off_passes(settings) -> None:
    """Age every recorded failure past the cool-off, as if that much time had gone by."""
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=past)


def test_the_web_login_locks_after_the_limit_and_refuses_even_the_right_password(client, lucy, settings):
    settings.AXES_FAILURE_LIMIT = 3
    assert [web_login(client, "lucy", "wrong").status_code for _ in range(2)] == [200, 200]
    locked = web_login(client, "lucy", "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()

    refused = web_login(client, "lucy")
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
    assert not logged_in(client)

    cool_off_passes(settings)
    assert web_login(client, "lucy").status_code == 302
    assert logged_in(client)


def test_ten_failures_lock_by_default(client, lucy, settings):
    assert settings.AXES_FAILURE_LIMIT == 10
    assert [web_login(client, "lucy", "wrong").status_code for _ in range(10)] == [200] * 9 + [429]
    assert web_login(client, "lucy").status_code == 429


def test_a_lockout_holds_one_username_from_one_address(client, lucy, settings):
    settings.AXES_FAILURE_LIMIT = 2
    UserFactory(username="lena-local")
    for _ in range(2):
        web_login(client, "lucy", "wrong")
    assert web_login(client, "lucy").status_code == 429
    # The same person from their own machine, and someone else from the attacker's address, log in.
    assert web_login(client, "lucy", REMOTE_ADDR="10.0.0.7").status_code == 302
    assert web_login(client, "lena-local").status_code == 302


def test_the_username_is_counted_without_regard_to_case(client, lucy, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for name in ("Lucy", "LUCY", " lucy"):
        web_login(client, name, "wrong")
    assert web_login(client, "lucy").status_code == 429


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(client, lucy, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        web_login(client, "lucy", "wrong")
    assert web_login(client, "lucy", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_behind_a_trusted_proxy_the_address_it_saw_counts(client, lucy, settings):
    settings.LEASEHOLD_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 2
    # Every call arrives from the ingress (127.0.0.1); the client wrote the left part itself.
    for _ in range(2):
        web_login(client, "lucy", "wrong", HTTP_X_FORWARDED_FOR="6.6.6.6, 10.0.0.5")
    assert web_login(client, "lucy", HTTP_X_FORWARDED_FOR="1.1.1.1, 10.0.0.5").status_code == 429
    assert web_login(client, "lucy", HTTP_X_FORWARDED_FOR="10.0.0.6").status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.5"}


def test_the_admin_login_says_it_is_locked(client, admin_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        client.post("/admin/login/", {"username": "ada", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "ada", "password": "leasehold"})
    assert response.status_code == 200
    assert "Too many failed logins" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_directory_account_is_locked_out_like_a_local_one(client, settings):
    require_env("LDAP_URI")
    settings.AXES_FAILURE_LIMIT = 3
    assert [web_login(client, "dana", "wrong").status_code for _ in range(3)] == [200, 200, 429]
    assert web_login(client, "dana").status_code == 429
    cool_off_passes(settings)
    assert web_login(client, "dana").status_code == 302
