"""A long-running daemon with mongomancy: a heartbeat loop that rides through failovers and stops cleanly.

SIGTERM (``docker stop``, systemd) and SIGINT (Ctrl-C) end the loop after the current iteration; the engine
is then disposed (its supervisor thread stopped, its client closed) and the process exits 0::

    python examples/daemon.py "mongodb://h1,h2,h3/?replicaSet=rs0" --interval 1
    python examples/daemon.py            # $MONGODB_URI, else an embedded simulated replica set
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import signal
import socket
import sys
import threading
from typing import Any

from mongomancy import CollectionDefinition, Database, Engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", nargs="?", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between heartbeats")
    parser.add_argument("--name", default=f"{socket.gethostname()}-{os.getpid()}")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        print(f"received {signal.Signals(signum).name}, stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    with contextlib.ExitStack() as stack:
        uri = args.uri
        if not uri:
            from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats  # noqa: PLC0415

            stack.enter_context(fast_heartbeats())
            uri = stack.enter_context(SimulatedReplicaSet()).uri
        engine = stack.enter_context(Engine(uri=uri))
        db = Database(engine, name="daemon_example")
        db.add_collection(CollectionDefinition(name="heartbeats"))
        db.create_all()
        beats = 0
        while not stop.is_set():
            now = datetime.datetime.now(datetime.timezone.utc)
            db["heartbeats"].update_one(
                {"_id": args.name}, {"$inc": {"beats": 1}, "$set": {"at": now}}, upsert=True
            )
            beats += 1
            stats = engine.stats()
            print(f"beat {beats} primary={stats.current_primary} failovers={stats.failovers}", flush=True)
            stop.wait(args.interval)
    # Leaving the block disposed the engine: supervisor stopped, client closed (and the embedded set).
    print(f"stopped cleanly after {beats} beats", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
