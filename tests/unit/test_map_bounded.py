"""cluster.map_bounded: order kept, the bound held, errors raised only after every call ended."""

import threading
import time

import pytest

from provisioning import cluster


def test_keeps_order_and_holds_the_bound(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 3
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def call(n):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return n * n

    assert cluster.map_bounded(call, range(12)) == [n * n for n in range(12)]
    assert peak[0] == 3


def test_one_at_a_time_runs_in_the_callers_thread(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 1
    assert cluster.map_bounded(lambda _: threading.current_thread(), range(3)) == [threading.current_thread()] * 3


def test_an_error_is_raised_after_the_other_calls_ended(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 4
    finished = []

    def call(n):
        if n == 0:
            raise RuntimeError("boom")
        time.sleep(0.05)
        finished.append(n)

    with pytest.raises(RuntimeError, match="boom"):
        cluster.map_bounded(call, range(4))
    assert sorted(finished) == [1, 2, 3]
