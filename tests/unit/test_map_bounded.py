"""cluster.map_bounded: order kept, the bound held, errors raised only after every call ended."""

import os
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


def _pool_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("leasehold-k8s_")}


def test_the_pool_threads_are_kept_between_calls(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 3
    cluster.map_bounded(lambda n: time.sleep(0.01), range(6))
    kept = _pool_threads()
    for _ in range(5):
        cluster.map_bounded(lambda n: time.sleep(0.01), range(6))
    assert kept and _pool_threads() == kept  # no thread started per call


def test_a_call_nested_in_another_never_waits_for_a_busy_pool(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 2
    answers = []

    def outer(n):
        # Every pool thread may be running an outer call here: the inner one still ends (its caller works).
        return sum(cluster.map_bounded(lambda m: m * n, range(4)))

    worker = threading.Thread(target=lambda: answers.append(cluster.map_bounded(outer, range(6))))
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "nested map_bounded calls deadlocked"
    assert answers == [[6 * n for n in range(6)]]


def test_an_ahead_call_the_busy_pool_never_started_runs_in_the_callers_thread(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 1
    release = threading.Event()
    blocker = cluster.Ahead(release.wait, 10)  # holds the pool's one thread
    waiting = cluster.Ahead(threading.current_thread)
    assert waiting.result() is threading.current_thread()
    release.set()
    assert blocker.result() is True


def test_an_ahead_call_raises_its_error_to_whoever_asks():
    def fail():
        raise RuntimeError("unreachable cluster")

    with pytest.raises(RuntimeError, match="unreachable cluster"):
        cluster.Ahead(fail).result()


def test_a_forked_child_starts_its_own_pool(settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 3
    cluster.map_bounded(lambda n: n, range(3))  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads do not exist here
        try:
            ok = cluster.map_bounded(lambda n: n * 2, range(9)) == [n * 2 for n in range(9)]
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
