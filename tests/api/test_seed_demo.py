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


def test_the_demo_has_a_template_an_app_bound_to_a_database_can_be_requested_with(settings, requester):
    from requests_app.errors import ValidationFailed
    from requests_app.services import request_submit
    from tests.factories import active_child, active_namespace, team

    settings.DEBUG = True
    call_command("seed_demo")
    atlas = team("atlas")
    namespace = active_namespace(atlas, requester, plan="medium")
    orders = active_child(namespace, "database", "orders", {"version": "16", "storage": "1Gi", "plan": "small"})
    spec = {"namespace": str(namespace.pk), "template": "web-with-database", "database": str(orders.pk)}

    request = request_submit(
        requester=requester,
        team="atlas",
        kind="app",
        name="shop",
        environment="dev",
        lease_days=7,
        justification="the README's walk",
        spec=spec,
    )

    assert request.spec["database"] == str(orders.pk)
    AppTemplate.objects.get(slug="web-with-database").full_clean()
    with pytest.raises(ValidationFailed) as refused:
        request_submit(
            requester=requester,
            team="atlas",
            kind="app",
            name="shop2",
            environment="dev",
            lease_days=7,
            justification="the README's walk",
            spec={**spec, "template": "static-site"},
        )
    assert "cannot use a database" in str(refused.value.errors["spec.database"])
