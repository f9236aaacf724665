"""With DEBUG off the site's own pages answer errors, the login page names LDAP only when logins go to
it, and the site has an icon (also at /favicon.ico, where browsers look for one)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.views import defaults

pytestmark = pytest.mark.django_db


def test_an_unknown_address_answers_the_sites_404_page(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist" in body
    assert 'href="/static/leasehold/site.css"' in body and "Go to the start page" in body


def test_an_object_outside_the_callers_teams_is_the_same_404_page(client, requester, settings):
    settings.DEBUG = False
    client.force_login(requester)
    response = client.get("/resources/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert "This page does not exist" in response.content.decode()
    assert "see your resources" in response.content.decode()


def test_the_403_and_500_pages_are_the_sites_own(rf):
    request = rf.get("/")
    denied = defaults.permission_denied(request, PermissionDenied())
    assert denied.status_code == 403 and "You may not do this" in denied.content.decode()
    failed = defaults.server_error(request)
    assert failed.status_code == 500
    assert "Something went wrong on our side" in failed.content.decode()
    assert "leasehold/site.css" in failed.content.decode()


def test_the_login_page_names_ldap_only_when_logins_go_to_it(client, settings):
    settings.AUTH_LDAP_SERVER_URI = ""
    local = client.get("/login/").content.decode()
    assert "LDAP" not in local and "Use your Leasehold account." in local

    settings.AUTH_LDAP_SERVER_URI = "ldap://127.0.0.1:3890"
    assert "Use your directory (LDAP) account." in client.get("/login/").content.decode()


def test_every_page_links_the_icon_and_favicon_ico_leads_to_it(client):
    assert 'rel="icon" href="/static/leasehold/favicon.svg"' in client.get("/login/").content.decode()
    icon = Client().get("/static/leasehold/favicon.svg")
    assert icon.status_code == 200 and icon["Content-Type"].startswith("image/svg+xml")
    svg = b"".join(icon.streaming_content)
    assert svg.startswith(b"<svg")
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content == svg
