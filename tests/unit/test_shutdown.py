"""``StopSignals``: a stop signal is never lost, whenever and on whichever thread it arrives (issue 14)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from mongomancy.cli._shutdown import StopSignals, exit_within, hard_exit_enabled


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_that_arrives_before_the_wait_is_kept(stop_signal: signal.Signals) -> None:
    # The lost wakeup of issue 14: the signal lands before the main thread starts waiting.
    with StopSignals() as signals:
        os.kill(os.getpid(), stop_signal)
        assert signals.wait(10) == stop_signal


def test_a_signal_sent_while_waiting_ends_the_wait() -> None:
    with StopSignals() as signals:
        sender = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        sender.start()
        try:
            assert signals.wait(10) == signal.SIGINT
        finally:
            sender.join()


def test_the_first_signal_counts_and_handlers_are_restored() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.wait(10) == signal.SIGTERM
        assert signals.wait(0) == signal.SIGTERM
    assert {signum: signal.getsignal(signum) for signum in before} == before
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd was given back (none was set before)


def test_nothing_happening_times_out_and_release_ends_the_wait() -> None:
    with StopSignals() as signals:
        assert signals.wait(0.05) is None
        releaser = threading.Timer(0.05, signals.release)
        releaser.start()
        try:
            assert signals.wait(10) is None and signals.released
        finally:
            releaser.join()


def test_off_the_main_thread_only_release_or_the_clock_end_the_wait() -> None:
    results: list[int | None] = []

    def worker() -> None:
        with StopSignals() as signals:
            results.append(signals.wait(0.01))
            signals.release()
            results.append(signals.wait())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert results == [None, None]


def test_no_hard_exit_under_a_test_runner() -> None:
    assert not hard_exit_enabled()
    exit_within(0.0, 3)  # a no-op here: it would end pytest otherwise
