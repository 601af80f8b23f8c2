"""A multithreaded batch job with mongomancy: workers insert jobs and count progress through failovers.

Run it against your replica set, or with no URI against an embedded simulated one (``pip install
mongomancy[sim]``) whose primary is stepped down while the job runs::

    python examples/batch_job.py "mongodb://h1,h2,h3/?replicaSet=rs0" --threads 8 --jobs 2000
    python examples/batch_job.py            # $MONGODB_URI, else the embedded simulated replica set

Exit code 0 when every job was stored exactly once and the progress counter matches.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import uuid

from mongomancy import CollectionDefinition, Database, Document, Engine, Index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", nargs="?", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=400, help="jobs in the batch")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        uri = args.uri
        cluster = None
        if not uri:
            from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats  # noqa: PLC0415

            stack.enter_context(fast_heartbeats())
            cluster = stack.enter_context(SimulatedReplicaSet())
            uri = cluster.uri
        engine = stack.enter_context(Engine(uri=uri, heartbeatFrequencyMS=500 if cluster is None else 100))
        db = Database(engine, name="batch_example")
        db.add_collection(
            CollectionDefinition(name="jobs", indices=[Index(fields={"batch": 1, "n": 1}, unique=True)])
        )
        db.add_collection(
            CollectionDefinition(
                name="progress",
                default_docs=[Document(unique_key={"_id": "done"}, data={"_id": "done", "count": 0})],
            )
        )
        db.create_all()
        batch = uuid.uuid4().hex
        before = db["progress"].find_one({"_id": "done"})["count"]

        def work(worker: int) -> None:
            for n in range(worker, args.jobs, args.threads):
                db["jobs"].insert_one({"batch": batch, "n": n, "worker": worker})
                db["progress"].update_one({"_id": "done"}, {"$inc": {"count": 1}})

        threads = [threading.Thread(target=work, args=(w,)) for w in range(args.threads)]
        for thread in threads:
            thread.start()
        print(f"started batch {batch}: {args.jobs} jobs on {args.threads} threads", flush=True)
        if cluster is not None:  # show a failover: step the primary down while the workers run
            cluster.step_down(election_seconds=0.5)
        for thread in threads:
            thread.join()

        stored = db["jobs"].count_documents({"batch": batch})
        counted = db["progress"].find_one({"_id": "done"})["count"] - before
        stats = engine.stats()
        print(
            f"batch {batch}: {stored}/{args.jobs} jobs stored, progress counter +{counted}; "
            f"failovers {stats.failovers}, retries {stats.retries}, failed {stats.failed}",
            flush=True,
        )
        return 0 if stored == counted == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
