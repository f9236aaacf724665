"""Logins and API tokens: lockout after repeated failures (django-axes), the token endpoint's throttle,
hashed expiring tokens (django-rest-knox) that end with the account or its password, and a token
user's LDAP groups re-read from the real directory (the slapd that `make test` starts)."""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import token_issue
from requests_app.models import AuditEvent
from tests.conftest import namespace_body, require_env
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    """Every login here checks a password, many times per test: a cheap hasher keeps that fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def lucy(atlas):
    """A local account (not in the directory) with the password "leasehold"."""
    return UserFactory(username="lucy", groups=["team-atlas"])


def get_token(username: str, password: str = "leasehold", **extra):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json", **extra)


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def token_of(username: str) -> str:
    response = get_token(username)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def web_login(client, username: str, password: str = "leasehold", **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def logged_in(client) -> bool:
    return client.get("/requests/").status_code == 200


def cool_off_passes(settings) -> None:
    """Age every recorded failure past the cool-off, as if that much time had gone by."""
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=past)


# --- lockout --------------------------------------------------------------------------------------


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


def test_the_token_endpoint_locks_after_ten_failures_by_default(lucy, settings):
    assert settings.AXES_FAILURE_LIMIT == 10
    answers = [get_token("lucy", "wrong").status_code for _ in range(10)]
    assert answers == [400] * 9 + [429]

    refused = get_token("lucy")
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.json()["detail"]
    assert refused["Retry-After"] == str(30 * 60)
    assert not ApiToken.objects.exists()

    cool_off_passes(settings)
    assert get_token("lucy").status_code == 200


def test_a_success_before_the_limit_starts_the_count_again(lucy, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert get_token("lucy", "wrong").status_code == 400
    assert get_token("lucy").status_code == 200
    for _ in range(2):
        assert get_token("lucy", "wrong").status_code == 400
    assert get_token("lucy").status_code == 200


def test_a_lockout_holds_one_username_from_one_address(client, lucy, settings):
    settings.AXES_FAILURE_LIMIT = 2
    UserFactory(username="lena-local")
    for _ in range(2):
        get_token("lucy", "wrong")
    assert get_token("lucy").status_code == 429
    # The same person from their own machine, and someone else from the attacker's address, log in.
    assert get_token("lucy", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert get_token("lena-local").status_code == 200
    # Web and API logins share the count.
    assert web_login(client, "lucy").status_code == 429


def test_the_username_is_counted_without_regard_to_case(lucy, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for name in ("Lucy", "LUCY", " lucy"):
        get_token(name, "wrong")
    assert get_token("lucy").status_code == 429


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(lucy, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        get_token("lucy", "wrong")
    assert get_token("lucy", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_behind_a_trusted_proxy_the_address_it_saw_counts(lucy, settings):
    settings.LEASEHOLD_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 2
    # Every call arrives from the ingress (127.0.0.1); the client wrote the left part itself.
    for _ in range(2):
        get_token("lucy", "wrong", HTTP_X_FORWARDED_FOR="6.6.6.6, 10.0.0.5")
    assert get_token("lucy", HTTP_X_FORWARDED_FOR="1.1.1.1, 10.0.0.5").status_code == 429
    assert get_token("lucy", HTTP_X_FORWARDED_FOR="10.0.0.6").status_code == 200
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.5"}


def test_the_admin_login_says_it_is_locked(client, admin_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        client.post("/admin/login/", {"username": "ada", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "ada", "password": "leasehold"})
    assert response.status_code == 200
    assert "Too many failed logins" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_the_token_endpoint_is_throttled_per_address(lucy, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth-token": "3/min"}}
    assert [get_token("lucy").status_code for _ in range(3)] == [200, 200, 200]
    throttled = get_token("lucy")
    assert throttled.status_code == 429
    assert "throttled" in throttled.json()["detail"]
    assert int(throttled["Retry-After"]) > 0
    assert get_token("lucy", REMOTE_ADDR="10.0.0.8").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "lucy"},
        {"username": "", "password": ""},
        {"username": ["x"]},
        {"username": "lu\x00cy", "password": "x"},
        {"username": "l" * 151, "password": "x"},
    ],
)
def test_incomplete_or_malformed_logins_are_400s(lucy, body):
    response = APIClient().post(TOKEN_URL, body, format="json")
    assert response.status_code == 400


# --- tokens ---------------------------------------------------------------------------------------


def test_a_token_comes_with_its_expiry_and_works_until_then(lucy):
    before = timezone.now()
    response = get_token("lucy")
    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry"}
    expiry = parse_datetime(response.json()["expiry"])
    assert before + timedelta(hours=10) <= expiry <= timezone.now() + timedelta(hours=10)
    me = with_token(response.json()["token"]).get("/api/v1/me/")
    assert (me.status_code, me.json()["username"]) == (200, "lucy")
    # The login is in axes' access log, but leaves no session or cookie behind.
    assert AccessLog.objects.filter(username="lucy", path_info=TOKEN_URL).count() == 1
    assert "sessionid" not in response.cookies and not Session.objects.exists()


def test_the_database_holds_a_digest_of_the_key_only(lucy):
    key = token_of("lucy")
    row = ApiToken.objects.values().get()
    assert row["digest"] == hashlib.sha512(key.encode()).hexdigest()
    assert key not in {str(value) for value in row.values()}
    assert row["expiry"] is not None


def test_an_expired_token_gets_401(lucy, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(milliseconds=1)}
    key = token_of("lucy")
    time.sleep(0.01)
    response = with_token(key).get("/api/v1/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert not ApiToken.objects.exists()


def test_a_new_password_ends_the_users_tokens(lucy):
    key, other = token_of("lucy"), token_of("lucy")
    lucy.set_password("a-new-password")
    lucy.save()
    assert with_token(key).get("/api/v1/me/").status_code == 401
    assert with_token(other).get("/api/v1/me/").status_code == 401
    event = AuditEvent.objects.get(verb="api_tokens_ended")
    assert (event.target_type, event.target_id, event.detail) == ("user", str(lucy.pk), "2 token(s): password changed")


def test_a_password_rehashed_at_login_keeps_the_tokens(client, lucy, settings):
    key = token_of("lucy")
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert web_login(client, "lucy").status_code == 302
    lucy.refresh_from_db()
    assert lucy.password.startswith("pbkdf2_sha256$")  # Django re-hashed the same password
    assert with_token(key).get("/api/v1/me/").status_code == 200


def test_deactivation_ends_the_users_tokens_for_good(lucy):
    key = token_of("lucy")
    lucy.is_active = False
    lucy.save()
    assert with_token(key).get("/api/v1/me/").status_code == 401
    assert not ApiToken.objects.filter(user=lucy).exists()
    lucy.is_active = True
    lucy.save()
    assert with_token(key).get("/api/v1/me/").status_code == 401
    assert AuditEvent.objects.filter(verb="api_tokens_ended", detail="1 token(s): account deactivated").count() == 1


def test_an_inactive_account_gets_no_token(lucy):
    get_user_model().objects.filter(pk=lucy.pk).update(is_active=False)
    assert get_token("lucy").status_code == 400
    assert not ApiToken.objects.exists()


def test_logout_ends_the_token_it_was_made_with(lucy):
    key, other = token_of("lucy"), token_of("lucy")
    assert with_token(key).post("/api/v1/auth/logout/").status_code == 204
    assert with_token(key).get("/api/v1/me/").status_code == 401
    assert with_token(other).get("/api/v1/me/").status_code == 200


def test_logout_leaves_no_session_or_cookie_behind(lucy):
    response = with_token(token_of("lucy")).post("/api/v1/auth/logout/")
    assert response.status_code == 204
    assert "sessionid" not in response.cookies and not Session.objects.exists()


@pytest.mark.parametrize(
    "header",
    [
        "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",  # a key of the old plain-text tokens
        "Token " + "0" * 64,
        "Token not-hex-at-all",
        "Token \x00\x00",
        "Token " + "é" * 10,
        "Token " + "a" * 5000,
        "Token",
        "Token a b",
    ],
)
def test_anything_but_a_current_key_is_a_401_never_a_500(lucy, header):
    token_of("lucy")
    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


@pytest.mark.integration  # needs PostgreSQL: the migration's SQL (now())
def test_the_plaintext_token_table_is_removed_on_upgrade():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer)")
        cursor.execute("INSERT INTO authtoken_token VALUES ('9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b', 1)")
        cursor.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('authtoken', '0001_initial', now())")
    migration = importlib.import_module("accounts.migrations.0002_remove_plaintext_authtokens").Migration
    with connection.schema_editor() as editor:
        for operation in migration.operations:
            operation.database_forwards("accounts", editor, None, None)
    assert "authtoken_token" not in connection.introspection.table_names()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'authtoken'")
        assert cursor.fetchone()[0] == 0


def test_the_admin_shows_who_holds_tokens_but_no_key_or_digest(client, lucy, admin_user):
    key = token_of("lucy")
    token = ApiToken.objects.get()
    client.force_login(admin_user)
    pages = [
        client.get(reverse("admin:accounts_apitoken_changelist")),
        client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])),
        client.get(reverse("admin:accounts_apitoken_delete", args=[token.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert key not in html and token.digest not in html and token.token_key not in html
    assert "lucy" in pages[0].content.decode()
    # Admins end tokens; they cannot make one (that would let them act as someone else).
    assert client.get(reverse("admin:accounts_apitoken_add")).status_code == 403
    assert "/admin/knox/" not in client.get("/admin/").content.decode()
    client.post(reverse("admin:accounts_apitoken_delete", args=[token.pk]), {"post": "yes"})
    assert with_token(key).get("/api/v1/me/").status_code == 401


# --- the directory ----------------------------------------------------------------------------------

GROUPS = "ou=groups,dc=example,dc=org"


@pytest.fixture
def change_group():
    """Add or remove a member of a group in the real directory; restored after the test."""
    require_env("LDAP_URI", "LDAP_BIND_DN", "LDAP_BIND_PASSWORD")
    import ldap

    conn = ldap.initialize(os.environ["LDAP_URI"])
    conn.simple_bind_s(os.environ["LDAP_BIND_DN"], os.environ["LDAP_BIND_PASSWORD"])
    undo: list[tuple[int, str, bytes]] = []

    def change(op: str, group: str, uid: str) -> None:
        dn, member = f"cn={group},{GROUPS}", f"uid={uid},ou=people,dc=example,dc=org".encode()
        mod = ldap.MOD_DELETE if op == "remove" else ldap.MOD_ADD
        conn.modify_s(dn, [(mod, "member", [member])])
        undo.append((ldap.MOD_ADD if op == "remove" else ldap.MOD_DELETE, dn, member))

    try:
        yield change
    finally:
        for mod, dn, member in reversed(undo):
            conn.modify_s(dn, [(mod, "member", [member])])
        conn.unbind_s()


@pytest.mark.integration  # needs the real LDAP server
def test_a_directory_account_is_locked_out_like_a_local_one(settings):
    require_env("LDAP_URI")
    settings.AXES_FAILURE_LIMIT = 3
    assert [get_token("dana", "wrong").status_code for _ in range(3)] == [400, 400, 429]
    assert get_token("dana").status_code == 429
    cool_off_passes(settings)
    assert get_token("dana").status_code == 200


@pytest.mark.integration  # needs the real LDAP server
def test_a_removal_from_a_team_group_reaches_a_token_after_the_refresh_interval(change_group, settings):
    settings.LEASEHOLD_LDAP_REFRESH_SECONDS = 3
    dana = with_token(token_of("dana"))
    filed = dana.post("/api/v1/requests/", namespace_body(), format="json")
    assert filed.status_code == 201, filed.content
    url = f"/api/v1/requests/{filed.json()['id']}/"

    change_group("remove", "team-atlas", "dana")
    # Within the interval the groups of the login still hold (no directory call per API call)...
    assert dana.get(url).status_code == 200
    time.sleep(3.1)
    # ...after it the directory is asked again: the team's requests are gone, so is filing for it.
    assert dana.get(url).status_code == 404
    assert dana.get("/api/v1/me/").json()["teams"] == []
    assert dana.post("/api/v1/requests/", namespace_body(name="other"), format="json").status_code == 400


@pytest.mark.integration  # needs the real LDAP server
def test_with_no_interval_every_call_asks_the_directory(change_group, settings):
    settings.LEASEHOLD_LDAP_REFRESH_SECONDS = 0
    frank = with_token(token_of("frank"))
    assert frank.get("/api/v1/me/").json()["groups"] == ["platform-approvers"]
    change_group("add", "security-approvers", "frank")
    assert sorted(frank.get("/api/v1/me/").json()["groups"]) == ["platform-approvers", "security-approvers"]


@pytest.mark.integration  # needs the real LDAP server
def test_with_the_cache_down_logins_and_tokens_still_work(settings):
    require_env("LDAP_URI")
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    dana = with_token(token_of("dana"))  # not throttled, rather than refused
    assert dana.get("/api/v1/me/").json()["teams"] == ["atlas"]  # read from the directory


@pytest.mark.integration  # needs the real LDAP server
def test_an_account_the_directory_no_longer_knows_loses_access(settings):
    require_env("LDAP_URI")
    ghost = UserFactory(username="ghost")
    ghost.set_unusable_password()  # made by the directory once, and since removed from it
    ghost.save()
    _, key = token_issue(user=ghost)
    settings.LEASEHOLD_LDAP_REFRESH_SECONDS = 0
    assert with_token(key).get("/api/v1/me/").status_code == 401
