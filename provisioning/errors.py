"""Errors from the cluster, sorted into the ones worth retrying and the ones that are final."""

from requests_app.errors import LeaseholdError


class ClusterError(LeaseholdError):
    """The Kubernetes API refused or failed a call."""


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
