"""The backup and restore Jobs' own commands, run for real against the test PostgreSQL server.

The local control plane runs no pods, so the lifecycle tests (test_backup.py) write the Jobs' status
through the API. Here the rendered Job is executed instead: its container's command, with its env
(the password resolved from the rendered Secret), as a local process using the PostgreSQL client
binaries of the server's major version, with the backup volume mapped to a temporary directory.

Only the values that name the in-cluster server (PGHOST, PGPORT, PGUSER: the database's Service DNS
name, port 5432 and a role named after the database) are pointed at the test server; the script,
the flags, the database name, the dump path and the way the password arrives are the rendered ones.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

from leases.backup import backup_location, backup_manifests, backup_path, restore_manifests
from requests_app.models import Resource
from tests.conftest import require_env
from tests.factories import active_child, active_namespace

# needs the Kubernetes API server and PostgreSQL (real dump and restore jobs)
pytestmark = [pytest.mark.django_db, pytest.mark.integration]

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# The helper: a Job manifest, run as a local process.


def run_job(manifests: list[dict], volumes: Path, bindir: str, **override: str) -> subprocess.CompletedProcess:
    """Run the single container of the rendered Job as a process, with exactly the Job's env.

    `valueFrom.secretKeyRef` is resolved from the rendered Secret (same namespace, as the kubelet
    does); every volume mount `/path` becomes `volumes/<volume name>` wherever a value starts with
    it; PATH holds the PostgreSQL client binaries (the image's PATH). `override` replaces values the
    Job sets, and only those.
    """
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    secrets = {
        m["metadata"]["name"]: m
        for m in manifests
        if m["kind"] == "Secret" and m["metadata"]["namespace"] == job["metadata"]["namespace"]
    }
    (container,) = job["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: volumes / m["name"] for m in container.get("volumeMounts", [])}
    for directory in mounts.values():
        directory.mkdir(parents=True, exist_ok=True)

    def local(value: str) -> str:
        for mount, directory in mounts.items():
            if value == mount or value.startswith(mount + "/"):
                return str(directory) + value[len(mount) :]
        return value

    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            secret = secrets[ref["name"]]
            if ref["key"] in secret.get("stringData", {}):
                value = secret["stringData"][ref["key"]]
            else:
                value = base64.b64decode(secret["data"][ref["key"]]).decode()
        else:
            value = item["value"]
        env[item["name"]] = local(value)
    for name, value in override.items():
        assert name in env, f"{name} is not set by the Job"
        env[name] = value
    argv = [local(arg) for arg in [*container["command"], *container.get("args", [])]]
    return subprocess.run(argv, env=env, cwd=volumes, capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------------------------------
# Fixtures: the server, its client binaries, scratch databases.


@pytest.fixture
def server():
    """Connection values of the test server (the `leasehold` role has CREATEDB) and its major version."""
    require_env("DATABASE_URL")
    url = urlparse(os.environ["DATABASE_URL"])
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
    return {
        "host": url.hostname,
        "port": str(url.port),
        "user": url.username,
        "password": url.password,
        "major": str(int(version) // 10000),
    }


@pytest.fixture
def bindir(server) -> str:
    """Debian's client binaries of the server's major version (what platform/services.sh runs)."""
    directory = f"/usr/lib/postgresql/{server['major']}/bin"
    for tool in ("pg_dump", "pg_restore"):
        if not os.access(f"{directory}/{tool}", os.X_OK):
            pytest.fail(f"{directory}/{tool} is missing (Debian's postgresql-client-{server['major']})")
    return directory


@pytest.fixture
def scratch_databases(server):
    """`create(name)` makes an empty database on the test server; all are dropped afterwards."""
    admin = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    made: list[str] = []

    def create(name: str) -> None:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)

    yield create
    for name in made:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def connect(name: str):
    return psycopg.connect(os.environ["DATABASE_URL"], dbname=name, autocommit=True)


def database_resource(namespace: Resource, name: str, version: str) -> Resource:
    """An active database resource as the worker leaves it (its request froze the provider)."""
    spec = {"engine": "postgres", "version": version, "storage": "1Gi", "plan": "small"}
    return active_child(namespace, "database", name, spec, frozen={"provider": "statefulset"})


@pytest.fixture
def namespace(atlas, requester):
    return active_namespace(atlas, requester)


def on_test_server(server) -> dict[str, str]:
    """The values naming the in-cluster server, pointed at the test server instead."""
    return {"PGHOST": server["host"], "PGPORT": server["port"], "PGUSER": server["user"]}


SOURCE_SQL = r"""
CREATE SCHEMA billing;
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    avatar bytea,
    joined timestamptz NOT NULL,
    profile jsonb
);
INSERT INTO customers (name, avatar, joined, profile) VALUES
    ('Zoë Ørsted — 東京 🐘', '\x00ff0a5c27'::bytea, '2025-12-31 23:59:59.123456+01', '{"tier": "gold", "tags": ["ä"]}'),
    (E'O''Brien\n"quoted"\\backslash\ttab', '', '1970-01-01 00:00:00+00', NULL),
    ('nobody', NULL, '2026-01-01 00:00:00+00', '[]');
CREATE TABLE billing.invoices (
    id bigserial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    amount numeric(12, 2) NOT NULL CHECK (amount > 0),
    note text,
    blob bytea
);
CREATE INDEX invoices_customer ON billing.invoices (customer_id);
INSERT INTO billing.invoices (customer_id, amount, note, blob)
    SELECT 1 + i % 3, i * 1.25, repeat('ü', i % 40), decode(md5(i::text), 'hex')
    FROM generate_series(1, 5000) AS i;
CREATE TABLE "Mixed Case" ("the value" text, "select" integer);
INSERT INTO "Mixed Case" VALUES ('spaces & keywords', 1), (NULL, NULL);
CREATE VIEW billing.totals AS
    SELECT customer_id, count(*) AS invoices, sum(amount) AS total FROM billing.invoices GROUP BY customer_id;
SELECT setval('customers_id_seq', 41);
"""


def snapshot(name: str) -> dict:
    """Every table's and view's rows (as text, sorted), the constraints, indexes and sequence states."""
    with connect(name) as conn:
        relations = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        rows = {
            f"{schema}.{table}": conn.execute(
                sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(sql.Identifier(schema, table))
            ).fetchall()
            for schema, table in relations
        }
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute(
            "SELECT schemaname, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        sequences = conn.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2"
        ).fetchall()
    return {"rows": rows, "constraints": constraints, "indexes": indexes, "sequences": sequences}


def files_in(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------


def test_the_rendered_dump_job_and_restore_job_round_trip_a_real_database(
    namespace, server, bindir, scratch_databases, tmp_path
):
    suffix = uuid.uuid4().hex[:8]
    source = database_resource(namespace, f"orders-{suffix}", server["major"])
    scratch_databases(source.name)
    with connect(source.name) as conn:
        conn.execute(SOURCE_SQL)
    before = snapshot(source.name)
    assert len(before["rows"]["billing.invoices"]) == 5000
    assert {"public.customers", "public.Mixed Case", "billing.totals"} <= before["rows"].keys()

    dump = backup_manifests(database=source, password=server["password"], at=AT)
    (container,) = dump[1]["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(f":{server['major']}")  # the major version of the binaries used here
    done = run_job(dump, tmp_path, bindir, **on_test_server(server))
    assert done.returncode == 0, done.stderr
    path = backup_path(source, AT)
    assert files_in(tmp_path / "backups") == [path]  # complete, under its final name, no .partial left

    # The restore Job of a new database (in the cluster it has the same name; here another one on the
    # same server), from the location the backup recorded.
    target = database_resource(namespace, f"restored-{suffix}", server["major"])
    scratch_databases(target.name)
    restore = restore_manifests(database=target, password=server["password"], location=backup_location(path), at=AT)
    done = run_job(restore, tmp_path, bindir, **on_test_server(server))
    assert done.returncode == 0, done.stderr
    assert snapshot(target.name) == before
    with connect(target.name) as conn:  # sequences continue where the source stopped; constraints hold
        added = conn.execute("INSERT INTO customers (name, joined) VALUES ('new', now()) RETURNING id")
        assert added.fetchone() == (42,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO billing.invoices (customer_id, amount) VALUES (999, 1)")

    # A restore that hits an error (here: the tables exist already) fails the Job, not half-silently.
    again = run_job(restore, tmp_path, bindir, **on_test_server(server))
    assert again.returncode != 0
    assert "already exists" in again.stderr


@pytest.mark.parametrize("failure", ["wrong password", "unreachable server"])
def test_a_failing_dump_fails_the_job_and_leaves_no_file(
    failure, namespace, server, bindir, scratch_databases, tmp_path
):
    source = database_resource(namespace, f"orders-{uuid.uuid4().hex[:8]}", server["major"])
    scratch_databases(source.name)
    override = on_test_server(server)
    password = server["password"]
    if failure == "wrong password":
        password = "not-the-password"
    else:
        with socket.socket() as free:  # a port nothing listens on
            free.bind(("127.0.0.1", 0))
            override["PGPORT"] = str(free.getsockname()[1])

    done = run_job(backup_manifests(database=source, password=password, at=AT), tmp_path, bindir, **override)
    assert done.returncode != 0
    assert ("password authentication failed" if failure == "wrong password" else "Connection refused") in done.stderr
    assert files_in(tmp_path / "backups") == []  # neither a dump nor a .partial that could be taken for one


def test_a_restore_from_a_missing_dump_fails_the_job(namespace, server, bindir, scratch_databases, tmp_path):
    target = database_resource(namespace, f"restored-{uuid.uuid4().hex[:8]}", server["major"])
    scratch_databases(target.name)
    location = backup_location(backup_path(target, AT))
    restore = restore_manifests(database=target, password=server["password"], location=location, at=AT)
    done = run_job(restore, tmp_path, bindir, **on_test_server(server))
    assert done.returncode != 0
    assert "No such file" in done.stderr or "could not open" in done.stderr
