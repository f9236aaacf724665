"""A registered cluster's credentials never reach a log line, an error message or the metrics, whatever
goes wrong: the API server refuses the token (401), refuses a client certificate it does not trust, or
does not answer at all. Every logger is captured at DEBUG (urllib3's and the Kubernetes client's
included), and so is everything written to stdout and stderr."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import subprocess
import traceback
import uuid

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from provisioning import cluster
from provisioning.errors import ClusterError, ClusterNotConfigured, PermanentClusterError, TransientClusterError
from requests_app.models import Cluster
from tests.conftest import require_env

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

NAMESPACE = cluster.ObjectRef("v1", "Namespace", "", "default")


def leaked(text: str, secret: str) -> bool:
    """Whether any 12 characters running of `secret` are in `text` (a truncated or split secret counts)."""
    return any(secret[i : i + 12] in text for i in range(len(secret) - 11))


def chain(exc: BaseException) -> str:
    """What an exception can show: its message, repr, traceback and every cause's, and their attributes."""
    parts = traceback.format_exception(exc)
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(getattr(seen, "args", ())), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.fixture
def everything_logged(caplog, capfd):
    """Every record of every logger at DEBUG, formatted with its traceback, and all of stdout/stderr."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "kubernetes", "provisioning", "requests_app", "leases"):
        caplog.set_level(logging.DEBUG, logger=name)
    silent = [logging.getLogger(n) for n in logging.root.manager.loggerDict if not logging.getLogger(n).propagate]
    for logger in silent:
        logger.addHandler(caplog.handler)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def text() -> str:
        out, err = capfd.readouterr()
        records = "\n".join(formatter.format(r) for r in caplog.records)
        return "\n".join([records, out, err, generate_latest(REGISTRY).decode()])

    yield text
    for logger in silent:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def fast_retries(settings):
    settings.LEASEHOLD_K8S_RETRIES = 2
    settings.LEASEHOLD_K8S_BACKOFF_SECONDS = 0.01
    settings.LEASEHOLD_K8S_BACKOFF_MAX_SECONDS = 0.05


def secret_string(kind: str) -> str:
    return f"lh-{kind}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def register(name: str, auth: str, path, api_server: str = "") -> Cluster:
    row = Cluster(name=name, api_server=api_server, auth=auth, credentials_path=str(path), environments=["dev"])
    row.full_clean()
    row.save()
    return row


def token_dir(tmp_path, token: str):
    """A token and A's CA in a directory, as a mounted Secret has them."""
    mounted = tmp_path / "token-cluster"
    mounted.mkdir()
    (mounted / "token").write_text(token + "\n")
    shutil.copy(os.environ["LEASEHOLD_K8S_CA_FILE"], mounted / "ca.crt")
    return mounted / "token"


def kubeconfig(path, user: dict, server: str = ""):
    with open(os.environ["LEASEHOLD_K8S_CA_FILE"], "rb") as ca:
        ca_data = base64.b64encode(ca.read()).decode()
    path.write_text(  # YAML, as kubectl writes it
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": server or os.environ["LEASEHOLD_K8S_SERVER"],
                            "certificate-authority-data": ca_data,
                        },
                    }
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def failing_calls() -> list[BaseException]:
    """A read, an apply, a delete and a ping to the current cluster: each must fail; their errors."""
    errors: list[BaseException] = []
    calls = [
        lambda: cluster.read(NAMESPACE),
        lambda: cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "never-made"}}),
        lambda: cluster.delete(cluster.ObjectRef("v1", "Namespace", "", "never-made")),
        cluster.ping,
    ]
    for call in calls:
        with pytest.raises((ClusterError, ClusterNotConfigured)) as exc:
            call()
        errors.append(exc.value)
    return errors


@pytest.fixture
def api_server():
    require_env("LEASEHOLD_K8S_SERVER", "LEASEHOLD_K8S_CA_FILE")
    cluster.reset_clients()
    yield os.environ["LEASEHOLD_K8S_SERVER"]
    cluster.reset_clients()


def test_a_refused_token_file_is_never_logged_nor_in_an_error(api_server, tmp_path, everything_logged):
    token = secret_string("token")
    row = register("tok", "token", token_dir(tmp_path, token), api_server=api_server)
    with cluster.using(row):
        errors = failing_calls()
    assert all(isinstance(e, PermanentClusterError) and e.status == 401 for e in errors[:3]), errors
    text = everything_logged() + "".join(chain(e) for e in errors)
    assert "401" in text and "Unauthorized" in text  # what went wrong is told
    assert not leaked(text, token)


def test_a_refused_kubeconfig_token_is_never_logged_nor_in_an_error(api_server, tmp_path, everything_logged):
    token = secret_string("kubeconfig")
    row = register("kc", "kubeconfig", kubeconfig(tmp_path / "kubeconfig", {"token": token}))
    with cluster.using(row):
        errors = failing_calls()
    assert all(isinstance(e, PermanentClusterError) and e.status == 401 for e in errors[:3]), errors
    text = everything_logged() + "".join(chain(e) for e in errors)
    assert not leaked(text, token)


def test_an_untrusted_client_key_is_never_logged_nor_in_an_error(api_server, tmp_path, everything_logged, fast_retries):
    key, cert = tmp_path / "client.key", tmp_path / "client.crt"
    subprocess.run(  # noqa: S603 - openssl, fixed arguments
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=leasehold-not-trusted"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    key_data = base64.b64encode(key.read_bytes()).decode()
    user = {"client-certificate-data": base64.b64encode(cert.read_bytes()).decode(), "client-key-data": key_data}
    row = register("kc-cert", "kubeconfig", kubeconfig(tmp_path / "kubeconfig", user))
    with cluster.using(row):
        errors = failing_calls()
    # The API server takes the certificate in the handshake and refuses it as a login: 401.
    assert all(isinstance(e, PermanentClusterError) and e.status == 401 for e in errors[:3]), errors
    text = everything_logged() + "".join(chain(e) for e in errors)
    pem_body = "".join(line for line in key.read_text().splitlines() if not line.startswith("-----"))
    # The kubeconfig's base64 (past the header every PEM shares) and the key itself.
    assert not leaked(text, key_data[120:]) and not leaked(text, pem_body)


def test_an_unreachable_server_never_shows_the_token(tmp_path, everything_logged, fast_retries, api_server):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secret_string("unreachable")
    row = register("gone", "token", token_dir(tmp_path, token), api_server=f"https://127.0.0.1:{port}")
    with cluster.using(row):
        errors = failing_calls()
    assert all(isinstance(e, TransientClusterError) for e in errors), errors
    text = everything_logged() + "".join(chain(e) for e in errors)
    assert "retrying" in text  # the retries were logged, and captured here
    assert not leaked(text, token)


@pytest.mark.parametrize("mistake", ["kubeconfig-as-token", "token-as-kubeconfig", "broken-kubeconfig"])
def test_a_misregistered_cluster_never_shows_its_file(api_server, tmp_path, everything_logged, fast_retries, mistake):
    """An admin's slip: the wrong auth for the file, or a kubeconfig that does not parse. The call fails
    with a ClusterError that names the cluster and the path, never with what the file holds."""
    token = secret_string("mistake")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    path = mounted / "file"
    if mistake == "kubeconfig-as-token":
        kubeconfig(path, {"token": token})
        shutil.copy(os.environ["LEASEHOLD_K8S_CA_FILE"], mounted / "ca.crt")
        row = register("slip", "token", path, api_server=api_server)
    elif mistake == "token-as-kubeconfig":
        path.write_text(token + "\n")
        row = register("slip", "kubeconfig", path)
    else:
        path.write_text(f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {token}\n    bad: [\n")
        row = register("slip", "kubeconfig", path)
    with cluster.using(row):
        errors = failing_calls()
    text = everything_logged() + "".join(chain(e) for e in errors)
    assert all(isinstance(e, ClusterNotConfigured) and "cluster slip: " in str(e) for e in errors), errors
    assert not leaked(text, token)
