from tests.integration.conftest import (  # noqa: F401  (shared fixtures for the real services)
    approved_namespace,
    cleanup_namespaces,
    core,
    kube_api,
)
