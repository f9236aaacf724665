"""Rendering deploy/'s overlays with kubectl's Kustomize, as an operator does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import kube_api  # noqa: F401  (the cluster admin's client, for test_dry_run)

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (ROOT / "deploy" / "overlays").iterdir() if p.is_dir())


def kustomize(path: Path) -> list[dict]:
    """`kubectl kustomize <path>`, parsed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not found: `make test` installs Debian's kubernetes-client")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render(overlay: str) -> list[dict]:
    """`kubectl kustomize deploy/overlays/<overlay>`, parsed."""
    return kustomize(ROOT / "deploy" / "overlays" / overlay)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every overlay, rendered once per test session."""
    return {overlay: render(overlay) for overlay in OVERLAYS}
