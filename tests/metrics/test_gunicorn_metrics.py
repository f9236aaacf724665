"""The web's metrics under gunicorn, as in a pod: gunicorn listens on the web port and on the metrics port;
/metrics answers on the metrics port only (gunicorn passes the port of the socket a request came in on,
which no header changes), and the counters of every worker process are added up there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from accounts.services import token_issue
from tests.conftest import namespace_body
from tests.integration.conftest import test_database_url, wait_for
from tests.smtp import free_port

from .conftest import Scrape

pytest.importorskip("gunicorn")  # the production web server (config/gunicorn.py)
pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    """gunicorn with two workers, its metrics hooks, and PROMETHEUS_MULTIPROC_DIR."""
    web, metrics = free_port(), free_port()
    shared = tmp_path / "prometheus"
    shared.mkdir()
    (shared / "counter_999999.db").write_bytes(b"stale")
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        "from config.metrics_hooks import child_exit, on_starting  # noqa: F401\n"
        f"bind = ['127.0.0.1:{web}', '127.0.0.1:{metrics}']\nworkers = 2\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "SECRET_KEY": "test-only",
        "ALLOWED_HOSTS": "leasehold.example.org,127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "LEASEHOLD_METRICS_PORT": str(metrics),
    }
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "-c", str(conf), "config.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{web}/healthz")[0] == 200, timeout=60, what="gunicorn")
        yield web, metrics, shared
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        print((tmp_path / "gunicorn.log").read_text()[-3000:])


def test_gunicorn_serves_metrics_on_the_metrics_port_only(gunicorn):
    web, metrics, shared = gunicorn
    assert not (shared / "counter_999999.db").exists()  # on_starting emptied it
    status, body = get(f"http://127.0.0.1:{metrics}/metrics", Host="10.42.0.17:9100")
    assert status == 200
    served = Scrape(body.decode())
    assert served.value("leasehold_metrics_database_up") == 1
    assert "leasehold_requests" in served.families
    ingress = {"Host": "leasehold.example.org", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Port": str(metrics)}
    assert get(f"http://127.0.0.1:{web}/metrics", **ingress)[0] == 404
    assert get(f"http://127.0.0.1:{metrics}/healthz")[0] == 404


def test_gunicorn_adds_up_the_counters_of_its_workers(gunicorn, requester):
    """Whichever worker files a request and whichever answers the scrape, the sum is the same."""
    web, metrics, shared = gunicorn
    _, key = token_issue(user=requester)
    filed = {"kind": "namespace", "action": "create", "team": "atlas"}
    for n in range(6):
        body = json.dumps(namespace_body(name=f"gunicorn{n}", spec={"plan": "medium"})).encode()
        status, answer = post(f"http://127.0.0.1:{web}/api/v1/requests/", body, Authorization=f"Token {key}")
        assert status == 201, answer[:300]
    for _ in range(4):  # any worker may answer
        served = Scrape(get(f"http://127.0.0.1:{metrics}/metrics")[1].decode())
        assert served.value("leasehold_requests_filed_total", **filed) == 6
        assert served.value("leasehold_requests", kind="namespace", state="pending_approval", team="atlas") == 6
    assert list(shared.glob("counter_*.db"))


def post(url: str, body: bytes, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url,
        data=body,
        method="POST",
        # As the Ingress sends it (TLS ends there).
        headers={"Content-Type": "application/json", "Host": "127.0.0.1", "X-Forwarded-Proto": "https", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
