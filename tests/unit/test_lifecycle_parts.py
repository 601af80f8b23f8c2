"""The lifecycle's parts without a server: how hooks are called, counters of dead threads, fresh locks after
fork."""

from __future__ import annotations

import gc
import os
import threading
from typing import Any

import pytest

from mongomancy import _forking
from mongomancy.events import ChangeKind, TopologyChange
from mongomancy.stats import PerThreadCount
from mongomancy.supervisor import RegisteredHook

CHANGE = TopologyChange(kind=ChangeKind.NO_PRIMARY)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def seed_style(self, source: Any) -> None:
        self.calls.append((source,))

    def two(self, source: Any, change: TopologyChange) -> None:
        self.calls.append((source, change))

    def defaults(self, source: Any, change: Any = None, extra: Any = None) -> None:
        self.calls.append((source, change))

    def star(self, *args: Any) -> None:
        self.calls.append(args)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("seed_style", ("engine",)),
        ("two", ("engine", CHANGE)),
        ("defaults", ("engine", CHANGE)),
        ("star", ("engine", CHANGE)),
    ],
)
def test_the_calling_convention_is_read_from_the_signature(name: str, expected: tuple[Any, ...]) -> None:
    recorder = Recorder()
    hook = RegisteredHook.adapt(getattr(recorder, name))
    hook.call("engine", CHANGE)
    assert recorder.calls == [expected]


def test_a_registered_hook_equals_its_original_for_unregistering() -> None:
    recorder = Recorder()
    adapted = RegisteredHook.adapt(recorder.seed_style)
    assert adapted == RegisteredHook(recorder.seed_style, recorder.seed_style)
    assert adapted != RegisteredHook.adapt(recorder.two)


def test_hooks_that_fit_no_convention_are_refused() -> None:
    with pytest.raises(TypeError, match="callable"):
        RegisteredHook.adapt("not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="3 positional arguments"):
        RegisteredHook.adapt(lambda a, b, c: None)
    with pytest.raises(TypeError, match="no positional argument"):
        RegisteredHook.adapt(lambda: None)


def test_five_thousand_short_lived_threads_leave_no_cells_and_lose_no_counts() -> None:
    counter = PerThreadCount()

    def count_three() -> None:
        for _ in range(3):
            counter.add()

    for _ in range(50):
        wave = [threading.Thread(target=count_three) for _ in range(100)]
        for thread in wave:
            thread.start()
        for thread in wave:
            thread.join()
    counter.add()  # this thread's own cell stays: it is alive
    assert counter.value() == 15_001
    assert counter.live_cells <= 101  # at most the last wave, still being torn down, and this thread


class Owner:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        _forking.renew_after_fork(self, "lock")


def test_dead_owners_leave_no_registration() -> None:
    gc.collect()  # owners an earlier test left in reference cycles go first, not during this count
    before = _forking.registered()
    owners = [Owner() for _ in range(100)]
    assert _forking.registered() == before + 100
    del owners
    gc.collect()
    assert _forking.registered() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_lock_held_by_another_thread_at_fork_is_free_in_the_child() -> None:
    owner = Owner()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with owner.lock:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: the holder thread does not exist here
        os._exit(0 if owner.lock.acquire(timeout=5) else 1)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
