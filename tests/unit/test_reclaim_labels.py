"""The lines of a reclamation report say which cluster a lease is on, when it is not `default`."""

from datetime import UTC, datetime

from leases.services.report import _label_of

EXPIRES = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def test_a_lease_on_the_default_cluster_reads_as_it_always_did():
    assert _label_of("namespace", "atlas-web", "web", 7, EXPIRES, "default") == (
        "namespace atlas-web (resource 7, lease expires 2026-01-02 03:04)"
    )


def test_a_lease_on_another_cluster_says_which():
    label = _label_of("database", "atlas-web", "orders", 8, EXPIRES, "prod-b")
    assert label == "database atlas-web / orders on cluster prod-b (resource 8, lease expires 2026-01-02 03:04)"
