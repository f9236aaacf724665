"""The one seam between Leasehold and the Kubernetes API: client factory, apply, read, delete.

`LEASEHOLD_CLUSTER` picks the credentials: `incluster` (the pod's ServiceAccount), `kubeconfig`
(`KUBECONFIG` or ~/.kube/config), `local` (the control plane started by `make run`/`make test`), or
`auto`: in-cluster when running in a pod, else a kubeconfig when there is one, else the local one.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from .errors import PermanentClusterError, TransientClusterError

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
_lock = threading.Lock()
_clients: dict[str, DynamicClient] = {}


def cluster_mode() -> str:
    """Resolve `auto` into the mode actually used."""
    mode = settings.LEASEHOLD_CLUSTER
    if mode != "auto":
        return mode
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "incluster"
    if os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().exists():
        return "kubeconfig"
    return "local"


def api_client(mode: str | None = None) -> client.ApiClient:
    """A fresh ApiClient for the configured cluster."""
    mode = mode or cluster_mode()
    configuration = client.Configuration()
    try:
        if mode == "incluster":
            config.load_incluster_config(client_configuration=configuration)
        elif mode == "kubeconfig":
            config.load_kube_config(client_configuration=configuration)
        else:
            path = settings.LEASEHOLD_LOCAL_KUBECONFIG
            if not Path(path).exists():
                raise ImproperlyConfigured(
                    f"LEASEHOLD_CLUSTER={settings.LEASEHOLD_CLUSTER} found no cluster: {path} does not exist. "
                    "Start the local control plane with `make run`, or set KUBECONFIG."
                )
            config.load_kube_config(config_file=path, client_configuration=configuration)
    except config.ConfigException as exc:
        raise ImproperlyConfigured(f"Kubernetes client configuration ({mode}): {exc}") from exc
    # A dead API server must fail a task quickly, not hang a worker.
    configuration.retries = False
    return client.ApiClient(configuration)


def dynamic_client() -> DynamicClient:
    """One DynamicClient per process and mode (API discovery is done once)."""
    mode = cluster_mode()
    with _lock:
        if mode not in _clients:
            try:
                _clients[mode] = DynamicClient(api_client(mode))
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _classify(exc) from exc
        return _clients[mode]


def reset_clients() -> None:
    """Forget cached clients (after the cluster or the credentials changed)."""
    with _lock:
        _clients.clear()


def _classify(exc: Exception) -> Exception:
    status = getattr(exc, "status", None)
    if status is None and isinstance(exc, DynamicApiError):
        status = exc.status
    if status is None:
        return TransientClusterError(f"Kubernetes API unreachable: {exc.__class__.__name__}: {exc}")
    reason = getattr(exc, "reason", "") or ""
    body = getattr(exc, "body", "") or ""
    message = f"Kubernetes API answered {status} {reason}: {str(body)[:500]}".strip()
    if status in TRANSIENT_STATUSES:
        headers = getattr(exc, "headers", None) or {}
        retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            after = float(retry_after) if retry_after is not None else None
        except ValueError:
            after = None
        return TransientClusterError(message, retry_after=after)
    return PermanentClusterError(message)


def _resource(api_version: str, kind: str):
    dyn = dynamic_client()
    try:
        return dyn.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError as exc:
        raise PermanentClusterError(f"The cluster does not serve {kind} in {api_version}.") from exc


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str


def apply(manifest: dict) -> dict:
    """Server-side apply `manifest` with field manager `leasehold`; returns the object as stored."""
    res = _resource(manifest["apiVersion"], manifest["kind"])
    meta = manifest["metadata"]
    try:
        result = dynamic_client().server_side_apply(
            res,
            body=manifest,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=settings.LEASEHOLD_FIELD_MANAGER,
            force_conflicts=True,
            _request_timeout=settings.LEASEHOLD_K8S_TIMEOUT,
        )
    except (ApiException, DynamicApiError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _classify(exc) from exc
    return result.to_dict()


def read(ref: ObjectRef) -> dict | None:
    """The object, or None when it does not exist."""
    res = _resource(ref.api_version, ref.kind)
    try:
        obj = dynamic_client().get(
            res, name=ref.name, namespace=ref.namespace or None, _request_timeout=settings.LEASEHOLD_K8S_TIMEOUT
        )
    except (ApiException, DynamicApiError) as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise _classify(exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _classify(exc) from exc
    return obj.to_dict()


def delete(ref: ObjectRef) -> bool:
    """Delete the object (background propagation). False when it was already gone."""
    res = _resource(ref.api_version, ref.kind)
    try:
        dynamic_client().delete(
            res,
            name=ref.name,
            namespace=ref.namespace or None,
            body={"propagationPolicy": "Background"},
            _request_timeout=settings.LEASEHOLD_K8S_TIMEOUT,
        )
    except (ApiException, DynamicApiError) as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise _classify(exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _classify(exc) from exc
    return True


def ping() -> None:
    """Raise a ClusterError when the API server is not ready."""
    try:
        dynamic_client().request("get", "/readyz", _request_timeout=5)
    except (ApiException, DynamicApiError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _classify(exc) from exc
