"""How things are written for people: display names and titles, kinds with their article, field labels,
counts, and the times a list shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from requests_app.models import Resource, ResourceRequest, Team
from requests_app.names import a_kind, action_verb, count_of, field_label, kind_noun, kind_title, words


def workload_request(kind: str, name: str, action: str = "create") -> ResourceRequest:
    atlas = Team(slug="atlas")
    web = Resource(kind="namespace", name="web", team=atlas)
    return ResourceRequest(action=action, kind=kind, team=atlas, name=name, parent=web)


def test_a_database_request_is_titled_by_its_namespace_and_name():
    request = workload_request("database", "orders")
    assert request.display_name == "atlas-web / orders"
    assert request.title == "create database atlas-web / orders"
    assert str(request) == "create database atlas-web / orders"


def test_a_namespace_request_is_titled_by_the_namespace_it_makes():
    request = ResourceRequest(action="create", kind="namespace", team=Team(slug="atlas"), name="web")
    assert request.title == "create namespace atlas-web"


def test_a_rollback_is_titled_with_a_verb():
    assert workload_request("app", "shop", action="rollback").title == "roll back app atlas-web / shop"


def test_a_resource_reads_as_its_kind_and_display_name():
    atlas = Team(slug="atlas")
    web = Resource(kind="namespace", name="web", team=atlas)
    assert str(web) == "namespace atlas-web"
    assert str(Resource(kind="app", name="shop", team=atlas, parent=web)) == "app atlas-web / shop"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("namespace", "a namespace"), ("database", "a database"), ("app", "an app"), ("cache", "a cache")],
)
def test_each_kind_takes_its_article(kind, expected):
    assert a_kind(kind) == expected


def test_kinds_and_actions_have_words_for_headings_and_sentences():
    assert (kind_noun("database"), kind_title("database"), kind_title("app")) == ("database", "Database", "App")
    assert (action_verb("create"), action_verb("rollback")) == ("create", "roll back")


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("cpu", "CPU"),
        ("cpu_request", "CPU request"),
        ("memory_limit", "Memory limit"),
        ("spec.plan", "Plan"),
        ("lease_days", "Lease (days)"),
        ("image_tag", "Image tag"),
        ("justification", "Justification"),
        ("__all__", ""),
    ],
)
def test_field_names_become_labels(name, label):
    assert field_label(name) == label


def test_audit_verbs_read_as_words():
    assert words("approval_routed") == "approval routed"


def test_counts_take_the_right_number():
    assert [count_of(n, "extension") for n in (0, 1, 2)] == ["0 extensions", "1 extension", "2 extensions"]
    assert count_of(3, "mail", "mails") == "3 mails"


def render(source: str, **context) -> str:
    return Template("{% load leasehold_names %}" + source).render(Context(context))


def test_a_moment_ago_is_just_now_and_later_a_natural_time():
    now = timezone.now()
    assert render("{{ t|ago }}", t=now) == "just now"
    assert render("{{ t|ago }}", t=now - timedelta(seconds=50)) == "just now"
    assert render("{{ t|ago }}", t=now - timedelta(hours=3, minutes=1)) == "3\xa0hours ago"


def test_a_time_ahead_reads_in_so_long_and_now_once_it_has_come():
    now = timezone.now()
    assert render("{{ t|from_now:now }}", t=now + timedelta(days=6, hours=2), now=now) == "in 6\xa0days"
    assert render("{{ t|from_now:now }}", t=now + timedelta(seconds=20), now=now) == "now"
    assert render("{{ t|from_now:now }}", t=now - timedelta(hours=1), now=now) == "now"


def test_the_template_filters_say_the_same_as_the_functions():
    assert render("Request {{ k|a_kind }} · {{ f|field_label }} · {{ k|kind_title }}", k="app", f="cpu_limit") == (
        "Request an app · CPU limit · App"
    )
