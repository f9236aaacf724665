"""Which Kubernetes errors are retried, and how long the waits are (no services needed)."""

from types import SimpleNamespace

import pytest
from django.test import override_settings

from provisioning import cluster
from provisioning.errors import PermanentClusterError, TransientClusterError
from provisioning.services.retries import retry_delay


def api_error(status, headers=None, body='{"message": "nope"}'):
    return SimpleNamespace(status=status, reason="R", body=body, headers=headers or {})


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_transient(status):
    assert isinstance(cluster._classify(api_error(status)), TransientClusterError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_refusals_are_permanent_and_keep_the_status(status):
    error = cluster._classify(api_error(status))
    assert isinstance(error, PermanentClusterError)
    assert error.status == status
    assert "nope" in str(error)


def test_a_dropped_connection_is_transient():
    assert isinstance(cluster._classify(ConnectionResetError(104, "reset")), TransientClusterError)


def test_retry_after_is_read_from_the_answer():
    assert cluster._classify(api_error(429, {"Retry-After": "7"})).retry_after == 7.0
    assert cluster._classify(api_error(503, {"Retry-After": "soon"})).retry_after is None


@override_settings(LEASEHOLD_RETRY_BACKOFF_SECONDS=2, LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS=60)
def test_task_retries_back_off_exponentially_with_jitter_and_a_ceiling():
    for attempt, (low, high) in enumerate([(1, 2), (2, 4), (4, 8), (8, 16)], start=1):
        assert low <= retry_delay(attempt) <= high
    assert retry_delay(30) == 60
    assert retry_delay(1, retry_after=20) == 20  # Retry-After wins over a shorter backoff...
    assert retry_delay(1, retry_after=600) == 60  # ...but never beyond the ceiling


@override_settings(LEASEHOLD_K8S_RETRIES=3, LEASEHOLD_K8S_BACKOFF_SECONDS=0, LEASEHOLD_K8S_BACKOFF_MAX_SECONDS=1)
def test_a_call_is_retried_in_process_a_bounded_number_of_times():
    calls = []

    def flaky():
        calls.append(1)
        raise TransientClusterError("503")

    with pytest.raises(TransientClusterError):
        cluster.with_retries(flaky, what="test")
    assert len(calls) == 3

    def refused():
        calls.append(1)
        raise PermanentClusterError("403", status=403)

    calls.clear()
    with pytest.raises(PermanentClusterError):
        cluster.with_retries(refused, what="test")
    assert len(calls) == 1


@override_settings(LEASEHOLD_K8S_RETRIES=3, LEASEHOLD_K8S_BACKOFF_MAX_SECONDS=1)
def test_a_long_retry_after_goes_to_the_task_instead_of_blocking_the_worker():
    calls = []

    def throttled():
        calls.append(1)
        raise TransientClusterError("429", retry_after=30)

    with pytest.raises(TransientClusterError):
        cluster.with_retries(throttled, what="test")
    assert len(calls) == 1
