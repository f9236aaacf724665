"""Identity from the real OpenLDAP directory started by `make test` (platform/ldap/dev-directory.ldif)."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from requests_app.models import Team
from tests.conftest import require_env

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ldap_configured():
    require_env("LDAP_URI")


def token_for(username: str, password: str = "leasehold"):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_an_ldap_user_gets_a_token_and_their_teams():
    response = token_for("dana")
    assert response.status_code == 200, response.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    me = client.get("/api/v1/me/").json()
    assert me == {
        "username": "dana",
        "email": "dana@example.org",
        "teams": ["atlas"],
        "groups": ["team-atlas"],
        "is_admin": False,
    }
    assert Team.objects.get(slug="atlas").group.name == "team-atlas"


def test_lead_groups_are_groups_but_not_teams():
    token_for("lena")
    user = get_user_model().objects.get(username="lena")
    assert set(user.groups.values_list("name", flat=True)) == {"team-atlas", "team-atlas-leads"}
    assert not Team.objects.filter(slug="atlas-leads").exists()


def test_members_of_the_admin_group_become_staff_and_superusers():
    assert token_for("ada").status_code == 200
    ada = get_user_model().objects.get(username="ada")
    assert (ada.is_staff, ada.is_superuser) == (True, True)
    token_for("dana")
    dana = get_user_model().objects.get(username="dana")
    assert (dana.is_staff, dana.is_superuser) == (False, False)


@pytest.mark.parametrize(
    ("username", "password"), [("dana", "wrong"), ("nobody", "leasehold"), ("", ""), ("dana*", "x")]
)
def test_bad_credentials_get_a_400_never_a_500(username, password):
    response = token_for(username, password)
    assert response.status_code == 400


def test_web_login_uses_the_directory(client):
    response = client.post("/login/", {"username": "frank", "password": "leasehold"})
    assert response.status_code == 302
    assert client.get("/approvals/").status_code == 200
    assert client.post("/login/", {"username": "frank", "password": "nope"}).status_code == 200
