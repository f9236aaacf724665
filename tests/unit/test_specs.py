import pytest

from requests_app.errors import ValidationFailed
from requests_app.specs import NAMESPACE_PLANS, app_spec, namespace_quota, validate_host, validate_namespace_name


@pytest.mark.parametrize("name", ["Checkout", "-x", "x-", "a_b", "a.b", "", "ü"])
def test_it_refuses_names_that_are_not_dns_labels(name):
    assert validate_namespace_name("atlas", name, "leasehold")


def test_it_refuses_a_namespace_longer_than_63_characters():
    errors = validate_namespace_name("atlas", "x" * 58, "leasehold")
    assert "64 characters" in errors[0]
    assert validate_namespace_name("atlas", "x" * 57, "leasehold") == []


@pytest.mark.parametrize(("team", "name"), [("kube", "system"), ("openshift", "x"), ("lease", "hold")])
def test_it_refuses_reserved_namespaces(team, name):
    assert "reserved" in validate_namespace_name(team, name, "lease-hold")[0]


def test_plans_give_the_contract_quantities():
    assert namespace_quota({"plan": "small"}) == NAMESPACE_PLANS["small"]
    assert (NAMESPACE_PLANS["medium"].cpu, NAMESPACE_PLANS["medium"].memory, NAMESPACE_PLANS["medium"].storage) == (
        "4",
        "8Gi",
        "50Gi",
    )


def test_it_accepts_explicit_quantities():
    quota = namespace_quota({"cpu": "1500m", "memory": "3Gi", "storage": "10Gi"})
    assert (quota.cpu, quota.memory) == ("1500m", "3Gi")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"plan": "huge"}, "spec.plan"),
        ({"cpu": "two", "memory": "1Gi", "storage": "1Gi"}, "spec.cpu"),
        ({"cpu": "-1", "memory": "1Gi", "storage": "1Gi"}, "spec.cpu"),
        ({"cpu": "1", "memory": "1Gi"}, "spec.storage"),
        ({"cpu": "16", "memory": "1Gi", "storage": "1Gi"}, "spec.cpu"),
        ({"plan": "small", "cpu": "1"}, "spec"),
        ({"plan": "small", "color": "red"}, "spec"),
        ({"cpu": True, "memory": "1Gi", "storage": "1Gi"}, "spec.cpu"),
    ],
)
def test_it_names_the_field_of_a_bad_spec(spec, field):
    with pytest.raises(ValidationFailed) as exc:
        namespace_quota(spec)
    assert field in exc.value.errors


def test_it_refuses_the_extra_reserved_namespaces_it_is_given():
    assert "reserved" in validate_namespace_name("leasehold", "backups", "leasehold", "leasehold-backups")[0]
    assert validate_namespace_name("leasehold", "backup", "leasehold", "leasehold-backups") == []


DOMAINS = ("apps.example.org", "preview.example.net")


@pytest.mark.parametrize("host", ["shop.apps.example.org", "eu.shop.apps.example.org", "x.preview.example.net"])
def test_a_host_under_a_configured_domain_is_accepted(host):
    assert validate_host(host, domains=DOMAINS) == []


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("apps.example.org", "Must be a name under *.apps.example.org, *.preview.example.net (not the domain itself)"),
        ("leasehold.example.org", "Must be a name under"),
        ("shopapps.example.org", "Must be a name under"),
        ("shop.apps.example.org.evil.com", "Must be a name under"),
        ("Shop.apps.example.org", "Must be a DNS name such as checkout.apps.example.org"),
        ("shop..apps.example.org", "Must be a DNS name"),
        ("*.apps.example.org", "Must be a DNS name"),
        ("x" * 64 + ".apps.example.org", "Must be a DNS name"),
        (42, "Must be a DNS name"),
    ],
)
def test_a_host_outside_the_configured_domains_is_refused(host, message):
    (error,) = validate_host(host, domains=DOMAINS)
    assert error.startswith(message)


def test_without_configured_domains_no_host_is_accepted():
    assert validate_host("shop.apps.example.org", domains=()) == [
        "This installation offers no Ingress hosts (no domain is configured); leave the host out."
    ]


def test_the_services_own_host_is_refused_even_under_a_configured_domain():
    errors = validate_host("portal.apps.example.org", domains=DOMAINS, service_hosts={"portal.apps.example.org"})
    assert errors == ["portal.apps.example.org is the address of Leasehold itself."]


def test_an_app_spec_checks_its_host_against_the_domains_it_is_given():
    spec = {"namespace": "checkout", "template": "web", "host": "shop.apps.example.org"}
    assert app_spec(spec, ingress_domains=DOMAINS)["host"] == "shop.apps.example.org"
    with pytest.raises(ValidationFailed) as exc:
        app_spec(spec, ingress_domains=("preview.example.net",))
    assert list(exc.value.errors) == ["spec.host"]
    assert "host" not in app_spec({**spec, "host": None}, ingress_domains=())
