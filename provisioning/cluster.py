"""The one seam between Leasehold and the Kubernetes API: client factory, apply, read, delete.

Which cluster a call goes to is the context's: `with cluster.using(resource.cluster): ...` sends every
call inside (threads started by `map_bounded`, `Ahead` and the reclaim batches included) to that
registered cluster; outside any `using`, calls go to the `default` cluster. Each cluster has its own
clients and its own timeout, so a slow one holds up only the calls made for it.

The `default` cluster follows the settings, as the one cluster did before clusters were data:
`LEASEHOLD_CLUSTER` picks the credentials: `incluster` (the pod's ServiceAccount), `kubeconfig`
(`KUBECONFIG` or ~/.kube/config), `local` (the control plane started by `make run`/`make test`), or
`auto`: in-cluster when running in a pod, else a kubeconfig when there is one, else the local one; its
timeout is LEASEHOLD_K8S_TIMEOUT. Every other cluster is what its row says (requests_app.models.Cluster):
in-cluster, a kubeconfig file, or a token file (re-read when it changes, as a projected or rotated token
is) with the API server's CA in `ca.crt` beside it. Only the path is in the database; no credential is
ever logged or put in an error message.

Every call is sorted into transient (429, 5xx, timeouts, dropped connections: retried here a few times
with exponential backoff and full jitter, honouring `Retry-After`, then raised as TransientClusterError
for the task to retry later) and permanent (403, 404 on a write, 422, ...: raised at once as
PermanentClusterError). The kinds Leasehold writes are addressed from a fixed table, so that a call
is exactly one HTTP request (no API discovery on the way that could fail or need extra rights); other
kinds fall back to discovery.

The Kubernetes client (and urllib3, which it brings) is imported by the functions that talk to a
cluster, not by this module: importing it costs about a quarter of a second, and every process
imports this module (the web, `manage.py` commands, the reclaimer's dry run), most never calling
the API server (tests/unit/test_startup_imports.py keeps it so).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings

from .errors import ClusterNotConfigured, PermanentClusterError, TransientClusterError
from .metrics import metered

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.dynamic import DynamicClient

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
# The objects that run a resource's pods: provisioning waits for them to be available, quarantine
# (leases) scales them to zero.
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
_lock = threading.Lock()
T = TypeVar("T")
U = TypeVar("U")

# apiVersion, kind → (plural, namespaced) for every kind Leasehold writes (and that platform/rbac grants).
KNOWN_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ResourceQuota"): ("resourcequotas", True),
    ("v1", "LimitRange"): ("limitranges", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("postgresql.cnpg.io/v1", "Cluster"): ("clusters", True),
}


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


DEFAULT = "default"
CONNECT_TIMEOUT_MAX = 5.0
# The health check's node list: a cluster whose /readyz answers but whose node list hangs holds up the
# check's write-back this long at most, whatever its own timeout.
NODES_TIMEOUT_MAX = 10.0


@dataclass(frozen=True)
class Target:
    """A cluster as calls reach it: its name and, for any but `default`, how to log in (a path, never a
    credential) and how long a call may take."""

    name: str = DEFAULT
    auth: str = ""
    api_server: str = ""
    credentials_path: str = ""
    timeout: float | None = None  # None: LEASEHOLD_K8S_TIMEOUT
    pk: int | None = field(default=None, compare=False)  # the row's id, when built from one

    def __str__(self) -> str:
        return self.name


_target: contextvars.ContextVar[Target] = contextvars.ContextVar("leasehold_cluster", default=Target())  # noqa: B039 (frozen)
_clients: dict[tuple[Target, str], DynamicClient] = {}
_api_clients: dict[tuple[Target, str], ApiClient] = {}


def target_of(cluster: Any) -> Target:
    """The Target of a Cluster row, of its name (read from the database), or of None (`default`)."""
    if cluster is None or isinstance(cluster, Target):
        return cluster or Target()
    if isinstance(cluster, str):
        from requests_app.models import Cluster

        row = Cluster.objects.filter(name=cluster).first()
        if row is None:
            if cluster == DEFAULT:
                return Target()
            raise ClusterNotConfigured(f"No cluster named {cluster!r} is registered.")
        cluster = row
    if cluster.name == DEFAULT:
        return Target(pk=cluster.pk)
    return Target(
        name=cluster.name,
        auth=cluster.auth,
        api_server=cluster.api_server,
        credentials_path=cluster.credentials_path,
        timeout=cluster.timeout_seconds,
        pk=cluster.pk,
    )


TARGET_TTL_SECONDS = 30.0
_targets: dict[int, tuple[float, Target]] = {}


def target_by_pk(pk: int | None) -> Target:
    """The Target of the cluster with id `pk` (None: `default`), read from the database at most every
    TARGET_TTL_SECONDS per process: what an admin changes on a cluster's row is used within that."""
    if pk is None:
        return Target()
    now = time.monotonic()
    cached = _targets.get(pk)
    if cached is not None and now - cached[0] < TARGET_TTL_SECONDS:
        return cached[1]
    from requests_app.models import Cluster

    row = Cluster.objects.filter(pk=pk).first()
    if row is None:
        raise ClusterNotConfigured(f"The cluster with id {pk} is not registered any more.")
    target = target_of(row)
    _targets[pk] = (now, target)
    return target


@contextmanager
def using(cluster: Any) -> Iterator[Target]:
    """Send the calls made inside to `cluster` (a Cluster row, its name, a Target; None: `default`)."""
    token = _target.set(target_of(cluster))
    try:
        yield _target.get()
    finally:
        _target.reset(token)


def current() -> Target:
    """The cluster the calls made here go to."""
    return _target.get()


def _timeout(cap: float | None = None) -> tuple[float, float]:
    """(connect, read) seconds for one call to the current cluster (at most `cap` each)."""
    limit = current().timeout or settings.LEASEHOLD_K8S_TIMEOUT
    limit = min(limit, cap) if cap else limit
    return (min(CONNECT_TIMEOUT_MAX, limit), limit)


def load_client() -> None:
    """Import the Kubernetes client now, in a process that will talk to a cluster (a worker, before
    its pool starts; the web server, before it serves)."""
    import kubernetes  # noqa: F401  (the package imports the client, config and dynamic modules)


def _transport_errors() -> tuple[type[Exception], ...]:
    """What a call to the API server raises when it fails: an answer, or no answer at all."""
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError

    return (ApiException, DynamicApiError, urllib3.exceptions.HTTPError, OSError)


def api_client(mode: str | None = None, target: Target | None = None) -> ApiClient:
    """A fresh ApiClient for `target` (default: the current cluster); `mode` for `default` only."""
    from kubernetes import client, config

    target = target or current()
    configuration = client.Configuration()
    if target.name != DEFAULT:
        _configure_registered(target, configuration)
        return _finish_client(configuration)
    mode = mode or cluster_mode()
    try:
        if mode == "incluster":
            config.load_incluster_config(client_configuration=configuration)
        elif mode == "kubeconfig":
            # Read KUBECONFIG now: the client library's default is fixed when it is first imported.
            path = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
            config.load_kube_config(config_file=path, client_configuration=configuration)
        else:
            path = settings.LEASEHOLD_LOCAL_KUBECONFIG
            if not Path(path).exists():
                raise ClusterNotConfigured(
                    f"LEASEHOLD_CLUSTER={settings.LEASEHOLD_CLUSTER} found no cluster: {path} does not exist. "
                    "Start the local control plane with `make run`, or set KUBECONFIG."
                )
            config.load_kube_config(config_file=path, client_configuration=configuration)
    except config.ConfigException as exc:
        raise ClusterNotConfigured(f"Kubernetes client configuration ({mode}): {exc}") from exc
    return _finish_client(configuration)


def _finish_client(configuration: Any) -> ApiClient:
    from kubernetes import client

    # No hidden retries in urllib3: the retry policy (and its bound) is ours, below.
    configuration.retries = False
    # Enough pooled connections for map_bounded's calls in flight, so that none waits for a socket.
    pool = max(configuration.connection_pool_maxsize, settings.LEASEHOLD_K8S_CONCURRENCY)
    configuration.connection_pool_maxsize = pool
    # The proxy the environment names, resolved once: left to the environment, the kubeconfig loader's
    # refresh hook (run before every call) sets the host again, and every such set re-reads all of
    # os.environ for proxies (a third of a call's CPU).
    configuration.proxy = configuration.proxy
    return client.ApiClient(configuration)


def _configure_registered(target: Target, configuration: Any) -> None:
    """Fill `configuration` from a registered cluster's row: in-cluster, a kubeconfig file, or a token
    file (the CA in `ca.crt` beside it; else the system's). Errors name the cluster and the path only."""
    import yaml
    from kubernetes import config

    path = Path(target.credentials_path) if target.credentials_path else None
    where = f"cluster {target.name}"
    try:
        if target.auth == "in-cluster":
            config.load_incluster_config(client_configuration=configuration)
        elif path is None or not path.is_file():
            raise ClusterNotConfigured(f"{where}: no credentials file at {target.credentials_path or '(no path)'}.")
        elif target.auth == "kubeconfig":
            config.load_kube_config(config_file=str(path), client_configuration=configuration)
        else:
            configuration.host = target.api_server
            configuration.api_key_prefix = {"authorization": "Bearer"}
            configuration.refresh_api_key_hook = _TokenFile(path, where)
            configuration.refresh_api_key_hook(configuration)
            if (path.parent / "ca.crt").is_file():
                configuration.ssl_ca_cert = str(path.parent / "ca.crt")
    # A kubeconfig that does not parse, or is not one (a token file registered as a kubeconfig), fails in
    # the client's loader with YAML, type or value errors: told by their type only, as a ConfigException.
    except (config.ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise ClusterNotConfigured(
            f"{where}: its {target.auth} credentials at {target.credentials_path} cannot be used "
            f"({type(exc).__name__})."
        ) from exc
    if target.api_server:
        configuration.host = target.api_server.rstrip("/")


class _TokenFile:
    """The token of a token file, read again when the file changes (a rotated or projected token)."""

    def __init__(self, path: Path, where: str) -> None:
        self.path, self.where, self.seen = path, where, -1.0

    def __call__(self, configuration: Any) -> None:
        try:
            changed = self.path.stat().st_mtime
            if changed != self.seen:
                token = self.path.read_text().strip()
                if not token:
                    raise ClusterNotConfigured(f"{self.where}: the token file {self.path} is empty.")
                if len(token.split()) != 1:
                    # Not a token (a kubeconfig registered as a token file, say): never sent, nor shown, as
                    # http.client would show it, whole, in the error it raises for a header with a newline.
                    raise ClusterNotConfigured(
                        f"{self.where}: the token file {self.path} holds more than one word (a kubeconfig "
                        "needs auth=kubeconfig)."
                    )
                configuration.api_key = {"authorization": token}
                self.seen = changed
        except OSError as exc:
            raise ClusterNotConfigured(
                f"{self.where}: cannot read the token file {self.path}: {exc.strerror}."
            ) from exc


def _client_key() -> tuple[Target, str]:
    target = current()
    return (target, cluster_mode() if target.name == DEFAULT else "")


def _shared_api_client() -> ApiClient:
    key = _client_key()
    with _lock:
        if key not in _api_clients:
            _api_clients[key] = api_client(key[1] or None, key[0])
        return _api_clients[key]


def dynamic_client() -> DynamicClient:
    """One DynamicClient per process and cluster (API discovery is done once); only for unknown kinds."""
    from kubernetes.dynamic import DynamicClient

    key = _client_key()
    with _lock:
        if key not in _clients:
            try:
                _clients[key] = DynamicClient(api_client(key[1] or None, key[0]))
            except _transport_errors() as exc:
                raise _classify(exc) from exc
        return _clients[key]


def reset_clients() -> None:
    """Forget cached clients and cluster rows (after the cluster or the credentials changed)."""
    with _lock:
        _clients.clear()
        _api_clients.clear()
        _targets.clear()


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _classify(exc: Exception) -> Exception:
    status = getattr(exc, "status", None)
    if not status:
        return TransientClusterError(f"Kubernetes API unreachable: {exc.__class__.__name__}: {exc}")
    reason = getattr(exc, "reason", "") or ""
    body = getattr(exc, "body", "") or ""
    try:
        detail = json.loads(body).get("message") or body
    except (ValueError, AttributeError):
        detail = body
    message = f"Kubernetes API answered {status} {reason}: {str(detail)[:500]}".strip()
    if status in TRANSIENT_STATUSES:
        return TransientClusterError(message, retry_after=_retry_after(exc))
    return PermanentClusterError(message, status=status)


def backoff_delay(attempt: int, *, base: float, cap: float, spread: float = 1.0, at_least: float = 0.0) -> float:
    """Exponential backoff with jitter, the one formula of every retry: base·2^attempt scaled by a random
    factor in [1 - spread, 1] (spread 1: full jitter), at least `at_least` (a Retry-After), at most `cap`."""
    jittered = base * (2 ** min(attempt, 60)) * random.uniform(1 - spread, 1)  # noqa: S311 (jitter, not cryptography)
    return min(cap, max(jittered, at_least))


def with_retries(call: Callable[[], T], *, what: str) -> T:
    """Run `call`, retrying transient errors a few times in-process (LEASEHOLD_K8S_RETRIES).

    A `Retry-After` longer than LEASEHOLD_K8S_BACKOFF_MAX_SECONDS is not slept here: the error goes
    up, and the task retries after that long without holding a worker.
    """
    attempts = max(1, settings.LEASEHOLD_K8S_RETRIES)
    for attempt in range(attempts):
        try:
            return call()
        except TransientClusterError as exc:
            cap = settings.LEASEHOLD_K8S_BACKOFF_MAX_SECONDS
            if attempt + 1 >= attempts or (exc.retry_after or 0) > cap:
                raise
            pause = backoff_delay(
                attempt, base=settings.LEASEHOLD_K8S_BACKOFF_SECONDS, cap=cap, at_least=exc.retry_after or 0
            )
            log.info("%s: %s; retrying in %.2fs", what, exc, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


class _Pool:
    """The threads that run independent cluster calls (`map_bounded`, `Ahead`), started once per process
    and kept: starting threads for every provisioning run cost more than two of its API calls (each
    start waits for the new thread to take the interpreter lock). A forked child (a Celery prefork
    worker) starts its own on first use; the parent's threads do not exist there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._made_for = (0, 0)  # the process and the size it was started for

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            wanted = (os.getpid(), self.size())
            if self._executor is None or self._made_for != wanted:
                if self._executor is not None and self._made_for[0] == wanted[0]:
                    self._executor.shutdown(wait=False)  # the setting changed: its idle threads end
                self._executor = ThreadPoolExecutor(max_workers=wanted[1], thread_name_prefix="leasehold-k8s")
                self._made_for = wanted
            return self._executor

    @staticmethod
    def size() -> int:
        return settings.LEASEHOLD_K8S_CONCURRENCY

    def forget(self) -> None:
        """After a fork: the executor's threads, queue and locks are the parent's; start afresh."""
        self._lock = threading.Lock()
        self._executor = None


_pool = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.forget)


class Ahead:
    """One cluster call started on the pool's threads while the caller goes on with other work (its
    database writes, say); `result()` waits for it and returns its answer or raises its error. Like
    `map_bounded`, for cluster calls only: the call must not touch the database. It runs in a copy of
    the caller's context, so its log lines carry the same task and request. When every pool thread is
    busy and the call has not started by the time its result is wanted, the caller runs it itself."""

    def __init__(self, call: Callable[..., Any], *args: Any) -> None:
        self._call, self._args = call, args
        self._context = contextvars.copy_context()
        self._future = _pool.executor().submit(self._context.run, call, *args)

    def result(self) -> Any:
        if self._future.cancel():  # never started (the pool is busy): run it here
            return self._context.run(self._call, *self._args)
        return self._future.result()


def map_bounded(call: Callable[[U], T], items: Iterable[U], *, limit: int | None = None) -> list[T]:
    """`[call(item) for item in items]` with at most LEASEHOLD_K8S_CONCURRENCY calls in flight.

    For independent cluster calls only: `call` must not touch the database (a thread would open a
    connection of its own). The answers keep the order of `items`; the first error is raised once
    every call has ended, so nothing is left running behind the caller's back.

    The caller's thread takes items too, beside up to `limit - 1` of the process's pool threads (see
    _Pool), so a call always makes progress, also nested in another or while other callers keep the
    pool busy. A `limit` above the pool's size (probing every cluster at once) gets threads of its own.
    """
    items = list(items)
    limit = max(1, min(limit or settings.LEASEHOLD_K8S_CONCURRENCY, len(items)))
    if limit == 1:
        return [call(item) for item in items]
    if limit > _pool.size():
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="leasehold-k8s-wide") as wide:
            futures = [wide.submit(contextvars.copy_context().run, call, item) for item in items]
        return [future.result() for future in futures]
    results: list[Any] = [None] * len(items)
    failed: list[BaseException | None] = [None] * len(items)
    taken = iter(range(len(items)))
    lock = threading.Lock()
    context = contextvars.copy_context()

    def work() -> None:
        while True:
            with lock:
                index = next(taken, None)
            if index is None:
                return
            try:
                # Each call in a copy of the caller's context: its cluster (`using`) and its log fields.
                results[index] = context.copy().run(call, items[index])
            except BaseException as exc:  # raised by the caller once every call has ended
                failed[index] = exc

    executor = _pool.executor()
    helpers = [executor.submit(work) for _ in range(limit - 1)]
    work()
    for helper in helpers:
        if not helper.cancel():  # started: it ends once the items run out; one never started is dropped
            helper.result()
    for error in failed:
        if error is not None:
            raise error
    return results


def _path_of(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    known = KNOWN_KINDS.get((api_version, kind))
    if known is not None:
        plural, namespaced = known
    else:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            res = dynamic_client().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise PermanentClusterError(f"The cluster does not serve {kind} in {api_version}.") from exc
        except _transport_errors() as exc:
            raise _classify(exc) from exc
        plural, namespaced = res.name, res.namespaced
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        if not namespace:
            raise PermanentClusterError(f"{kind} {name} needs a namespace.")
        base += f"/namespaces/{namespace}"
    return f"{base}/{plural}" + (f"/{name}" if name else "")


@metered
def _request(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "",
    timeout: float | None = None,
) -> dict:
    """One HTTP call to the API server; the decoded JSON answer. Raises a classified ClusterError."""
    from kubernetes.client.exceptions import ApiException

    api = _shared_api_client()
    headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
    try:
        params = api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = api.call_api(*params, _request_timeout=_timeout(timeout))
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
    except _transport_errors() as exc:
        raise _classify(exc) from exc
    try:
        return json.loads(data) if data else {}
    except ValueError as exc:
        raise TransientClusterError(f"Kubernetes API sent an unreadable answer to {method} {path}") from exc


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def ref_of(manifest: dict) -> ObjectRef:
    meta = manifest["metadata"]
    return ObjectRef(manifest["apiVersion"], manifest["kind"], meta.get("namespace") or "", meta["name"])


def apply(manifest: dict, *, field_manager: str | None = None, dry_run: bool = False) -> dict:
    """Server-side apply `manifest` with field manager `leasehold`; returns the object as stored.

    `dry_run` asks the server what the apply would store, without storing it: the drift check compares
    that with the live object, so only a real difference in the fields Leasehold owns counts.

    Another `field_manager` applies a partial object that owns only its own fields (quarantine
    sets replicas to zero as `leasehold-quarantine` without dropping what `leasehold` applied).
    Conflicts are forced: Leasehold owns the fields it renders. Re-running converges; a lost answer
    is simply applied again (never a create, so never a 409).
    """
    ref = ref_of(manifest)
    path = _path_of(ref.api_version, ref.kind, ref.namespace or None, ref.name)
    query = [("fieldManager", field_manager or settings.LEASEHOLD_FIELD_MANAGER), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    return with_retries(
        lambda: _request("PATCH", path, body=manifest, query=query, content_type="application/apply-patch+yaml"),
        what=f"{'dry-run ' if dry_run else ''}apply {ref}",
    )


def read(ref: ObjectRef) -> dict | None:
    """The object, or None when it does not exist."""
    path = _path_of(ref.api_version, ref.kind, ref.namespace or None, ref.name)

    def get() -> dict | None:
        try:
            return _request("GET", path)
        except PermanentClusterError as exc:
            if exc.status == 404:
                return None
            raise

    return with_retries(get, what=f"read {ref}")


class Deletion(StrEnum):
    """What the API server answered a DELETE."""

    GONE = "gone"  # 404: nothing by that name (deleted before, or never there)
    DELETED = "deleted"  # removed at once (a Status, or the object as it was last stored)
    TERMINATING = "terminating"  # accepted; still there until its finalizers ran (a Namespace, always)
    CONFLICT = "conflict"  # the preconditions failed: the object changed or was replaced since it was read


def delete(ref: ObjectRef, *, uid: str = "", resource_version: str = "") -> Deletion:
    """Delete the object (background propagation) and say from the answer alone whether it is gone.

    `uid` and `resource_version` go into DeleteOptions' preconditions: the API server deletes only the
    object with that uid, unchanged since that version was read, and answers 409 (CONFLICT) otherwise;
    so a read that proved the object ours and the delete are one atomic decision, and the object is
    never deleted if it was relabelled or replaced in between. The answer already tells whether the
    object is gone or terminating: no read afterwards. A retried DELETE whose first answer was lost
    sees 404 or a CONFLICT (the deletion changed the version); the caller reads again.
    """
    path = _path_of(ref.api_version, ref.kind, ref.namespace or None, ref.name)
    body: dict[str, Any] = {"propagationPolicy": "Background"}
    preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
    if preconditions:
        body["preconditions"] = preconditions

    def remove() -> Deletion:
        try:
            answer = _request("DELETE", path, body=body)
        except PermanentClusterError as exc:
            if exc.status == 404:
                return Deletion.GONE
            if exc.status == 409 and preconditions:
                return Deletion.CONFLICT
            raise
        if answer.get("kind") != "Status" and (answer.get("metadata") or {}).get("deletionTimestamp"):
            return Deletion.TERMINATING
        return Deletion.DELETED

    return with_retries(remove, what=f"delete {ref}")


def ping() -> None:
    """Raise a ClusterError when the API server is not ready."""
    from kubernetes.client.exceptions import ApiException

    api = _shared_api_client()
    try:
        params = api.param_serialize("GET", "/readyz", header_params={}, auth_settings=["BearerToken"])
        response = api.call_api(*params, _request_timeout=_timeout(5.0))
        response.read()
        if response.status != 200:
            raise ApiException(http_resp=response)
    except _transport_errors() as exc:
        raise _classify(exc) from exc


def list_nodes() -> list[dict]:
    """The current cluster's nodes: one GET /api/v1/nodes, not retried (the health check, its caller,
    asks again at its next run). A 403 (the service may not list nodes) is a PermanentClusterError."""
    return _request("GET", "/api/v1/nodes", timeout=NODES_TIMEOUT_MAX).get("items") or []
