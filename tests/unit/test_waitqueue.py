"""The bounded queue where commands wait for a primary."""

from __future__ import annotations

import threading
import time

import pytest

from mongomancy.errors import EngineDisposedError, FatalConfigurationError, QueueFullError
from mongomancy.testing import wait_for
from mongomancy.waitqueue import PrimaryWaitQueue


def _waiters(queue: PrimaryWaitQueue, count: int, results: list):
    def wait(index: int) -> None:
        try:
            results.append((index, queue.wait(time.monotonic() + 30)))
        except Exception as error:  # collected for the assertions
            results.append((index, error))

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(queue) == count, 5, f"{count} waiters queued")
    return threads


def test_open_queue_lets_commands_through():
    queue = PrimaryWaitQueue(2)
    queue.open()
    assert queue.wait(time.monotonic() + 1) is True
    assert len(queue) == 0


def test_open_releases_every_waiter_and_records_the_high_water_mark():
    queue = PrimaryWaitQueue(10)
    results: list = []
    threads = _waiters(queue, 5, results)
    queue.open()
    for thread in threads:
        thread.join(5)
    assert sorted(results) == [(i, True) for i in range(5)]
    assert queue.high_water == 5 and len(queue) == 0


def test_a_full_queue_fails_at_once_with_its_capacity():
    queue = PrimaryWaitQueue(2)
    results: list = []
    threads = _waiters(queue, 2, results)
    started = time.monotonic()
    with pytest.raises(QueueFullError, match="2 commands are already waiting") as info:
        queue.wait(time.monotonic() + 30)
    assert time.monotonic() - started < 1 and info.value.capacity == 2
    queue.open()
    for thread in threads:
        thread.join(5)


def test_deadline_passes_without_a_primary():
    queue = PrimaryWaitQueue(2)
    assert queue.wait(time.monotonic() + 0.01) is False
    assert len(queue) == 0  # the waiter removed itself


def test_shut_wakes_everyone_with_the_error_and_refuses_newcomers():
    queue = PrimaryWaitQueue(10)
    results: list = []
    threads = _waiters(queue, 3, results)
    queue.shut(lambda: EngineDisposedError("disposed"))
    for thread in threads:
        thread.join(5)
    assert all(isinstance(outcome, EngineDisposedError) for _, outcome in results)
    # one fresh error per waiter: a shared instance would grow its traceback with every raise
    assert len({id(outcome) for _, outcome in results}) == 3
    with pytest.raises(EngineDisposedError):
        queue.wait(time.monotonic() + 1)


def test_fail_wakes_everyone_with_fresh_errors_and_refuses_until_cleared():
    queue = PrimaryWaitQueue(10)
    results: list = []
    threads = _waiters(queue, 3, results)
    queue.fail(lambda: FatalConfigurationError("refused", reason="authentication"))
    for thread in threads:
        thread.join(5)
    assert [type(outcome) for _, outcome in results] == [FatalConfigurationError] * 3
    assert len({id(outcome) for _, outcome in results}) == 3
    with pytest.raises(FatalConfigurationError):
        queue.wait(time.monotonic() + 1)
    queue.clear_failure()
    queue.open()
    assert queue.wait(time.monotonic() + 1) is True


def test_waiting_since_marks_the_start_of_an_unbroken_wait():
    queue = PrimaryWaitQueue(10)
    assert queue.waiting_since is None
    results: list = []
    before = time.monotonic()
    threads = _waiters(queue, 2, results)
    since = queue.waiting_since
    assert since is not None and since >= before
    queue.open()
    for thread in threads:
        thread.join(5)
    assert queue.waiting_since is None
