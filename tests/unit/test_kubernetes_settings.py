"""LEASEHOLD_POD_SECURITY, LEASEHOLD_POD_SECURITY_VERSION and LEASEHOLD_INGRESS_DOMAINS, as read at start-up."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.kubernetes import ENVIRONMENTS, ingress_domains, pod_security_levels, pod_security_version
from requests_app.models import Environment


def test_the_settings_know_the_request_environments():
    assert list(ENVIRONMENTS) == list(Environment.values)


@pytest.mark.parametrize(
    ("raw", "levels"),
    [
        ("", {"dev": "restricted", "test": "restricted", "staging": "restricted", "prod": "restricted"}),
        ("restricted", {"dev": "restricted", "test": "restricted", "staging": "restricted", "prod": "restricted"}),
        ("baseline", {"dev": "baseline", "test": "baseline", "staging": "baseline", "prod": "baseline"}),
        ("dev=baseline", {"dev": "baseline", "test": "restricted", "staging": "restricted", "prod": "restricted"}),
        (
            " dev = privileged , baseline, prod=restricted ",
            {"dev": "privileged", "test": "baseline", "staging": "baseline", "prod": "restricted"},
        ),
    ],
)
def test_a_bare_level_is_the_default_and_environment_entries_override_it(raw, levels):
    assert pod_security_levels(raw) == levels


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("strict", "'strict' is not a Pod Security level"),
        ("Restricted", "'Restricted' is not a Pod Security level"),
        ("dev=open", "'open' is not a Pod Security level"),
        ("qa=baseline", "'qa' is not an environment"),
        ("=baseline", "'' is not an environment"),
        ("dev=baseline,dev=restricted", "'dev' is given twice"),
        ("baseline,restricted", "at most one level without an environment"),
    ],
)
def test_a_bad_pod_security_setting_stops_the_start(raw, message):
    with pytest.raises(ImproperlyConfigured, match=f"LEASEHOLD_POD_SECURITY: .*{message}"):
        pod_security_levels(raw)


@pytest.mark.parametrize("raw", ["latest", "v1.30", " v1.0 "])
def test_the_pod_security_version_is_latest_or_a_minor_release(raw):
    assert pod_security_version(raw) == raw.strip()


@pytest.mark.parametrize("raw", ["", "1.30", "v1.30.2", "v2.0", "newest"])
def test_a_bad_pod_security_version_stops_the_start(raw):
    with pytest.raises(ImproperlyConfigured, match="LEASEHOLD_POD_SECURITY_VERSION"):
        pod_security_version(raw)


def test_ingress_domains_are_normalised_and_deduplicated():
    values = [" Apps.Example.org ", "*.apps.example.org", ".preview.example.org.", ""]
    assert ingress_domains(values) == ("apps.example.org", "preview.example.org")
    assert ingress_domains([]) == ()


@pytest.mark.parametrize("value", ["apps example.org", "-apps.example.org", "apps..example.org", "a" * 64 + ".org"])
def test_a_bad_ingress_domain_stops_the_start(value):
    with pytest.raises(ImproperlyConfigured, match="LEASEHOLD_INGRESS_DOMAINS"):
        ingress_domains([value])
