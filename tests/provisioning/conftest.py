"""Provisioning tests against the real API server, in-process (no worker)."""

from tests.integration.conftest import (  # noqa: F401  (fixtures shared with the integration tests)
    approved_namespace,
    cleanup_namespaces,
    core,
    kube_api,
)
