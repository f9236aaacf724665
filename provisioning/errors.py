"""Errors from the cluster, sorted into the ones worth retrying and the ones that are final."""

from django.core.exceptions import ImproperlyConfigured

from requests_app.errors import LeaseholdError, Unavailable


class ClusterError(Unavailable):
    """The Kubernetes API refused or failed a call."""


class ClusterNotConfigured(ImproperlyConfigured, Unavailable):
    """No usable cluster credentials (no kubeconfig, a broken one, not in a cluster). Still an
    ImproperlyConfigured for the code that handles those; callers hear only that the cluster is unreachable."""


class TransientClusterError(ClusterError):
    """Worth retrying: throttling, server errors, timeouts, dropped connections."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentClusterError(ClusterError):
    """Retrying cannot help: forbidden, invalid, not found, conflicting. `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ClaimLost(LeaseholdError):
    """Another worker took over this request's provisioning (ours outlived its claim): stop quietly."""
