"""Django set up for the benchmark, on a database of its own (created fresh, migrated)."""

from __future__ import annotations

import os


def prepare() -> None:
    """Point Django at a fresh `leasehold_bench` database on the same server, migrate it, and set up."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    url = os.environ["DATABASE_URL"]
    base, _, _ = url.rpartition("/")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS leasehold_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE leasehold_bench")
    os.environ["DATABASE_URL"] = f"{base}/leasehold_bench"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
