import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command

from requests_app.models import AppTemplate, Team

pytestmark = pytest.mark.django_db


def test_seed_demo_makes_the_demo_people_teams_and_a_template_once(settings):
    settings.DEBUG = True
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    call_command("seed_demo")
    call_command("seed_demo")
    users = get_user_model().objects
    assert users.count() == 8
    assert set(Team.objects.values_list("slug", flat=True)) == {"atlas", "zephyr"}
    assert users.get(username="ada").is_superuser and not users.get(username="dana").is_staff
    assert authenticate(username="frank", password="leasehold") is not None
    template = AppTemplate.objects.get(slug="static-site")
    template.full_clean()  # its image comes from the allowed registry it seeds


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert get_user_model().objects.count() == 0
