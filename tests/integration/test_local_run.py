"""`make run` as the README describes it: the README's commands typed in a second terminal work while it
runs, it creates what its own defaults need in its cluster, and SIGTERM to its process group stops
everything it started, as Ctrl-C does.

Starts a real `make run` (its own local control plane, its own SQLite database) from this checkout, so
it takes about a minute; skipped while a `make run` of this checkout is running (they share `.run/`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
# What a developer's fresh terminal has: none of the service's settings.
PLAIN = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")


def plain_env(**extra: str) -> dict[str, str]:
    return {**{k: os.environ[k] for k in PLAIN if k in os.environ}, **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def processes_mentioning(text: str) -> set[int]:
    """The processes whose command line names `text` (the daemons run in sessions of their own)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.add(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def call(base: str, path: str, *, token: str = "", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    request = urllib.request.Request(base + path, data=data, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def second_terminal(*argv: str) -> subprocess.CompletedProcess:
    """A README command, as typed in another terminal of the same checkout."""
    return subprocess.run(  # noqa: S603
        list(argv), cwd=ROOT, env=plain_env(), capture_output=True, text=True, timeout=120, check=False
    )


def run_env_in_use() -> bool:
    try:
        text = (ROOT / ".run" / "env").read_text()
    except OSError:
        return False
    pid = re.search(r"^LEASEHOLD_RUN_PID=(\d+)$", text, re.MULTILINE)
    return bool(pid) and alive(int(pid.group(1)))


@pytest.fixture
def make_run(tmp_path):
    """`make run` on a free port with a database of its own, started in its own process group."""
    if run_env_in_use():
        pytest.skip("a `make run` of this checkout is running (.run/env); this test would share its .run/")
    port = free_port()
    log = tmp_path / "make-run.log"
    env = plain_env(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            ["make", "--no-print-directory", "run"],  # noqa: S607
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"make run exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return call(base, "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(answers, timeout=300, what="make run to answer")
        yield process, base, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def test_the_readme_commands_work_in_a_second_terminal_and_sigterm_stops_everything(make_run):
    process, base, log = make_run
    services_dir = re.search(r"source (\S+)/env\.sh", log.read_text()).group(1)

    # What make run's defaults need exists in its cluster: the backup namespace and volume claim.
    api = config.new_client_from_config(config_file=str(ROOT / ".run" / "kubeconfig"))
    core = client.CoreV1Api(api)
    assert core.read_namespace("leasehold-backups").metadata.labels["leasehold.io/backups"] == "true"
    assert core.read_namespaced_persistent_volume_claim("leasehold-backups", "leasehold-backups")

    # The README's walk: dana asks for a namespace that is approved at once, then reclamation by hand.
    status, answer = call(base, "/api/v1/auth/token/", body={"username": "dana", "password": "leasehold"})
    assert status == 200, answer
    name = f"t{uuid.uuid4().hex[:8]}"
    body = {
        "kind": "namespace",
        "team": "atlas",
        "name": name,
        "environment": "dev",
        "lease_days": 7,
        "justification": "the README's walk",
        "spec": {"plan": "small"},
    }
    status, filed = call(base, "/api/v1/requests/", token=answer["token"], body=body)
    assert status == 201, filed
    wait_until(
        lambda: call(base, f"/api/v1/requests/{filed['id']}/", token=answer["token"])[1]["state"] == "active",
        timeout=60,
        what="the namespace to be provisioned",
    )

    # The README's walk on: a database in a namespace, and an app from the demo template bound to it.
    dana = answer["token"]
    frank = call(base, "/api/v1/auth/token/", body={"username": "frank", "password": "leasehold"})[1]["token"]

    def file_and_approve(body: dict) -> dict:
        status, filed = call(base, "/api/v1/requests/", token=dana, body=body)
        assert status == 201, filed
        for step in call(base, "/api/v1/approvals/", token=frank)[1].get("results", []):
            if str(step.get("request", {}).get("id", step.get("request"))) == str(filed["id"]):
                assert (
                    call(base, f"/api/v1/approvals/{step['id']}/approve/", token=frank, body={"comment": "ok"})[0]
                    == 200
                )
        return wait_until(
            lambda: (r := call(base, f"/api/v1/requests/{filed['id']}/", token=dana)[1])["state"] == "active" and r,
            timeout=90,
            what=f"{body['kind']} {body['name']} to be provisioned",
        )

    other = f"t{uuid.uuid4().hex[:8]}"
    with_db = file_and_approve({**body, "name": other, "spec": {"plan": "small"}})
    namespace_id = str(with_db["resource"]["id"] if isinstance(with_db["resource"], dict) else with_db["resource"])
    common = {"team": "atlas", "environment": "dev", "lease_days": 7, "justification": "the README's walk"}
    database = file_and_approve(
        {**common, "kind": "database", "name": "orders", "spec": {"namespace": namespace_id, "storage": "1Gi"}}
    )
    database_id = str(database["resource"]["id"] if isinstance(database["resource"], dict) else database["resource"])
    spec = {"namespace": namespace_id, "template": "web-with-database", "database": database_id}
    file_and_approve({**common, "kind": "app", "name": "shop", "spec": spec})
    env = (
        client.AppsV1Api(api).read_namespaced_deployment("shop", f"atlas-{other}").spec.template.spec.containers[0].env
    )
    assert {e.name for e in env if e.value_from and e.value_from.secret_key_ref} >= {"PGHOST", "PGPASSWORD"}

    dry = second_terminal(PYTHON, "manage.py", "reclaim_leases", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    into_grace = second_terminal(PYTHON, "manage.py", "reclaim_leases", "--now", "2030-01-01T00:00:00Z")
    assert into_grace.returncode == 0, into_grace.stderr
    assert into_grace.stderr == "", into_grace.stderr
    assert re.search(rf"^  - namespace atlas-{name} ", into_grace.stdout, re.MULTILINE), into_grace.stdout
    deleted = second_terminal(PYTHON, "manage.py", "reclaim_leases", "--now", "2030-01-05T00:00:00Z")
    assert deleted.returncode == 0 and deleted.stderr == "", deleted.stderr
    assert f"atlas-{name}" in deleted.stdout.split("reclaim (delete):", 1)[1], deleted.stdout
    assert core.read_namespace(f"atlas-{name}").status.phase == "Terminating"
    # The database's backup Job was created where make run's defaults say (no pod runs it here).
    jobs = client.BatchV1Api(api).list_namespaced_job("leasehold-backups").items
    assert [j.metadata.name for j in jobs if j.metadata.name.startswith("backup-")], deleted.stdout

    # SIGTERM to make run's process group, as a process manager or `kill -- -PGID` sends it.
    started = descendants(process.pid) | processes_mentioning(services_dir)
    assert len(processes_mentioning(services_dir)) >= 3  # etcd, kube-apiserver, kube-controller-manager
    os.killpg(process.pid, signal.SIGTERM)
    # make forwards the TERM it got to its child, and process managers repeat theirs: a second one
    # while the services are being stopped must not cut that short.
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while (survivors := {p for p in started if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not survivors, [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in survivors if alive(p)]
    assert not Path(services_dir).exists()
    assert not (ROOT / ".run" / "env").exists()
    # A command typed after the run ended does not pick up its stale settings.
    after = second_terminal(PYTHON, "manage.py", "reclaim_leases", "--dry-run")
    assert after.returncode != 0 and "SECRET_KEY" in after.stderr
