"""The built image, run with buildah (`make test-image` builds it first, then runs these).

Skipped unless LEASEHOLD_IMAGE names a built image: the first build takes minutes (4 here, base
included), so `make test` does not build it. Static checks of the Containerfile
itself are in tests/deploy/test_containerfile.py and always run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.deploy.conftest import render

IMAGE = os.environ.get("LEASEHOLD_IMAGE", "")
pytestmark = pytest.mark.skipif(
    not IMAGE or not shutil.which("buildah"),
    reason="needs a built image: `make test-image` builds it with buildah and runs these tests",
)
# What deploy/ gives the pods (the production overlay's ConfigMap), plus the Secret's keys.
SECRETS = {
    "SECRET_KEY": "image-test-only-" + "k" * 50,
    "DATABASE_URL": "sqlite:////tmp/image-test.sqlite3",
    "REDIS_URL": "",
}


@pytest.fixture(scope="module")
def container():
    """A working container of the image (buildah from), removed afterwards."""
    name = subprocess.run(["buildah", "from", IMAGE], capture_output=True, text=True, check=True).stdout.strip()
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def production_env(**extra: str) -> list[str]:
    config = next(o for o in render("production") if o["kind"] == "ConfigMap")["data"]
    env = {**config, **SECRETS, **extra}
    # The pods read these from files and servers that do not exist here.
    for name in ("SECRET_KEY_FILE", "LDAP_BIND_PASSWORD_FILE", "LDAP_URI"):
        env.pop(name, None)
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


def in_container(container: str, env: list[str], *command: str) -> list[str]:
    """The command line that runs `command` through the image's entry point (as the pods do)."""
    return [
        "buildah",
        "run",
        "--isolation",
        "chroot",
        *env,
        container,
        "--",
        "/app/platform/image/entrypoint.sh",
        *command,
    ]


def run(container: str, *command: str, env: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        in_container(container, env, *command),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_it_runs_as_the_numeric_non_root_user(container):
    done = run(container, "id", "-u", env=[])
    assert done.stdout.strip() == "10001"
    user = subprocess.run(
        ["buildah", "inspect", "--format", "{{.OCIv1.Config.User}}", IMAGE], capture_output=True, text=True, check=True
    )
    assert user.stdout.strip() == "10001:10001"


def test_no_compiler_or_headers_are_in_the_image(container):
    done = run(container, "sh", "-c", "command -v gcc cc cpp make; ls /usr/include/ldap.h", env=[])
    assert done.stdout.strip() == "" and done.returncode != 0, done.stdout


def test_check_deploy_passes_with_the_production_configuration(container):
    done = run(container, "manage", "check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_web_server_answers_healthz_and_serves_hashed_compressed_static_files(container):
    port = free_port()
    env = production_env(PORT=str(port), GUNICORN_HOST="127.0.0.1", ALLOWED_HOSTS="localhost,127.0.0.1")
    server = subprocess.Popen(
        in_container(container, env, "web"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:  # noqa: S310
                    assert response.status == 200
                    assert response.headers["Server"] == "gunicorn"
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "gunicorn did not answer /healthz within 60 s"
                time.sleep(0.5)
        # As the Ingress sends it: TLS ended there (without the header, the page redirects to HTTPS).
        behind_ingress = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
        login = urllib.request.Request(f"http://127.0.0.1:{port}/login/", headers=behind_ingress)
        with urllib.request.urlopen(login, timeout=10) as response:  # noqa: S310
            assert response.status == 200
            assert "Strict-Transport-Security" in response.headers
            page = response.read().decode()
        css = next(part.split('"')[0] for part in page.split('href="')[1:] if part.startswith("/static/"))
        assert len(css.rsplit(".", 2)[-2]) == 12, f"{css} has no content hash"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{css}", headers={**behind_ingress, "Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.headers["Content-Encoding"] == "gzip"
            assert "immutable" in response.headers["Cache-Control"]
    finally:
        server.terminate()
        server.wait(timeout=60)
