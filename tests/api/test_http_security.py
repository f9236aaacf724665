"""HTTPS only, with HSTS, a Content-Security-Policy and secure cookies; sessions that end when idle; API
docs that need nothing but the service itself; and a production environment that passes
`manage.py check --deploy`."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from requests_app.sessions import RENEWED_AT

pytestmark = pytest.mark.django_db


def test_plain_http_is_redirected_to_https_except_the_probes(settings):
    settings.SECURE_SSL_REDIRECT = True  # the default without DEBUG (the test run turns it off)
    client = Client()
    response = client.get("/login/")
    assert (response.status_code, response["Location"]) == (301, "https://testserver/login/")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code != 301
    # TLS ended at the ingress, which says so in X-Forwarded-Proto.
    assert client.get("/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200


def test_https_pages_send_hsts_and_a_policy_without_inline_code(client):
    response = client.get("/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    page = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", page)


def test_session_and_csrf_cookies_are_https_only_and_last_8_hours(client, requester):
    client.get("/login/", secure=True)
    response = client.post("/login/", {"username": "dana", "password": "leasehold"}, secure=True)
    assert response.status_code == 302
    session_cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert session_cookie["secure"] and session_cookie["httponly"]
    assert session_cookie["max-age"] == 8 * 3600
    assert client.cookies[django_settings.CSRF_COOKIE_NAME]["secure"]


def test_a_session_ends_after_8_idle_hours_and_activity_keeps_it(client, requester):
    client.force_login(requester)
    key = client.session.session_key

    def hours_left() -> float:
        return (Session.objects.get(session_key=key).expire_date - timezone.now()) / timedelta(hours=1)

    def idle(seconds: float, left: timedelta) -> None:
        """As if the last renewal was `seconds` ago and the session had `left` to live."""
        session = client.session
        session[RENEWED_AT] -= seconds
        session.save()
        Session.objects.filter(session_key=key).update(expire_date=timezone.now() + left)

    # A request soon after the last renewal writes nothing (no UPDATE per page or htmx poll)...
    idle(60, timedelta(hours=7))
    assert client.get("/").status_code == 200
    assert 6.9 < hours_left() < 7
    # ...one after 1% of the timeout (about 5 minutes) renews the session, cookie included.
    idle(300, timedelta(hours=7))
    response = client.get("/")
    assert response.cookies[django_settings.SESSION_COOKIE_NAME]["max-age"] == 8 * 3600
    assert 7.99 < hours_left() <= 8
    # 8 hours without a request end it.
    idle(8 * 3600, timedelta(seconds=-1))
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/")


# --- API docs without internet ---------------------------------------------------------------------------


def test_the_api_docs_use_only_assets_the_service_serves(client):
    response = client.get("/api/docs/", secure=True)
    assert response.status_code == 200
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    page = response.content.decode()
    assert "<style" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 5  # two stylesheets, the favicon, Swagger UI's two scripts and the start-up script
    for url in assets:
        url = url.replace("&amp;", "&")
        assert url.startswith("/") and not url.startswith("//"), url
        served = client.get(url, secure=True)
        assert served.status_code == 200, url
        assert b"".join(served.streaming_content) if served.streaming else served.content, url


# --- a production environment passes Django's deployment checks ------------------------------------------


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "SESSION_", "CSRF_")) and k not in ("DEBUG", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="leasehold.example.org",
        DATABASE_URL="postgres://leasehold:secret@db.example.org:5432/leasehold",
    )
    env.update(overrides)
    return env


def test_manage_py_check_deploy_finds_nothing_in_a_production_environment():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=django_settings.BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_each_secure_default_can_be_overridden_by_its_variable():
    show = (
        "from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_AGE)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show],
        cwd=django_settings.BASE_DIR,
        env=production_env(
            SECURE_SSL_REDIRECT="false",
            SECURE_HSTS_SECONDS="60",
            SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
            SECURE_PROXY_SSL_HEADER="X-Forwarded-Scheme",
            SESSION_COOKIE_SECURE="false",
            CSRF_COOKIE_SECURE="false",
            SESSION_IDLE_TIMEOUT_SECONDS="900",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "False 60 False ('HTTP_X_FORWARDED_SCHEME', 'https') False False 900"
