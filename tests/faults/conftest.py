"""Fixtures for the fault-injection suite: the proxy, a kubeconfig through it, a private Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from kombu import pools

from config.celery import app as celery_app
from tests.conftest import require_env
from tests.integration.conftest import (  # noqa: F401  (fixtures shared with the integration tests)
    FAST_RETRIES,
    approved_namespace,
    celery_processes,
    cleanup_namespaces,
    core,
    kube_api,
    wait_for,
)

from .proxy import FaultProxy, write_kubeconfig


@pytest.fixture
def proxy():
    """The fault proxy in front of the test cluster's API server (no rules yet)."""
    require_env("LEASEHOLD_K8S_SERVER", "LEASEHOLD_K8S_CA_FILE", "LEASEHOLD_K8S_ADMIN_TOKEN")
    running = FaultProxy(os.environ["LEASEHOLD_K8S_SERVER"], ca_file=os.environ["LEASEHOLD_K8S_CA_FILE"], seed=42)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def faulty_env(proxy, tmp_path) -> dict[str, str]:
    """Environment for a worker that reaches Kubernetes through the proxy, with short retry delays."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", proxy.url, os.environ["LEASEHOLD_K8S_ADMIN_TOKEN"])
    return {**FAST_RETRIES, "KUBECONFIG": str(kubeconfig), "LEASEHOLD_CLUSTER": "kubeconfig"}


class PrivateRedis:
    """A redis-server of this test's own, on a free loopback port, that the test may stop and start."""

    def __init__(self, workdir: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (make test installs it)"
        self.proc = subprocess.Popen(  # noqa: S603
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(answers, timeout=15, interval=0.05, what="the private redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def _use_broker(url: str) -> None:
    celery_app.conf.broker_url = url
    celery_app.conf.broker_write_url = None
    # Forget every pooled connection and producer, so the next publish connects to `url`.
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def private_redis(tmp_path):
    """A private Redis that this test's process and workers use as their broker."""
    require_env("REDIS_URL")
    redis = PrivateRedis(tmp_path)
    redis.start()
    before = celery_app.conf.broker_url
    _use_broker(redis.url)
    yield redis
    _use_broker(before)
    redis.stop()
