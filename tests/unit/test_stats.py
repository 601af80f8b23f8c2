"""The engine's counters: the hot path's lock-free per-thread count, and the snapshot."""

from __future__ import annotations

import threading

from mongomancy.stats import Counters, PerThreadCount


def test_per_thread_count_adds_up_across_threads():
    count = PerThreadCount()

    def add_many() -> None:
        for _ in range(10_000):
            count.add()

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count.value() == 80_000


def test_snapshot_derives_operations_from_successes_and_failures():
    counters = Counters()
    for _ in range(3):
        counters.succeeded()
    counters.failed()
    counters.retried("NotPrimaryError:not_applied")
    counters.retried("NotPrimaryError:not_applied")
    counts, by_cause = counters.snapshot()
    assert (counts["operations"], counts["succeeded"], counts["failed"], counts["retries"]) == (4, 3, 1, 2)
    assert dict(by_cause) == {"NotPrimaryError:not_applied": 2}
