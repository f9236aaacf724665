"""The kind registry: each kind one object, found by name; what higher apps add is found the same way."""

from __future__ import annotations

import pytest

from leases.kinds import LEASE_KINDS, backed_up_kinds
from provisioning.kinds import PROVISIONING_KINDS
from requests_app import kinds
from requests_app.models import Resource, ResourceRequest


def test_every_module_of_the_package_registers_its_kind_in_catalog_order():
    assert kinds.names() == ["namespace", "database", "app", "cache"]
    assert kinds.get("cache").name == "cache"
    assert kinds.find("nothing") is None
    with pytest.raises(KeyError):
        kinds.get("nothing")


def test_the_kind_columns_take_their_choices_from_the_registry():
    for model in (Resource, ResourceRequest):
        assert model._meta.get_field("kind").choices == [
            ("namespace", "Namespace"),
            ("database", "Database"),
            ("app", "App"),
            ("cache", "Cache"),
        ]


def test_an_app_binds_to_what_the_kinds_bound_to_declare():
    bindings = {b.spec_key: b for b in kinds.bindings_from("app")}
    assert set(bindings) == {"database", "cache"}
    assert dict(bindings["cache"].env) == {"REDIS_URL": "REDIS_URL"}
    assert bindings["database"].template_flag == "accepts_database"
    assert kinds.bindings_from("cache") == [] and kinds.bindings_to("app") == []


def test_higher_apps_register_their_part_of_each_kind():
    for name in kinds.names():
        assert PROVISIONING_KINDS.get(name).render.__name__ == f"render_{name}"
    assert backed_up_kinds() == ["database"]
    assert LEASE_KINDS.get("cache").backed_up is False  # no registration: no backup
    assert PROVISIONING_KINDS.get("namespace").password_secret is None
