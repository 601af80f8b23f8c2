"""A simulated MongoDB replica set on loopback, for tests and demos.

Why it exists: mongomancy's whole point is surviving primary switches, and no ``mongod`` is available where
its tests run.  :class:`SimulatedReplicaSet` starts N member endpoints that plain pymongo discovers as a
replica set, with a primary and secondaries, while every command is executed by one storage backend
(``nx_27017`` from the ``sim`` extra, or a real ``mongod`` with ``MONGOMANCY_SIM_BACKEND=mongod``).  Tests can
then step the primary down, kill and restart members, inject ``failCommand``-style errors, delay or blackhole
members and report replication lag, all from the test thread while traffic flows, and read back what every
member saw (:class:`CommandRecord`) to prove e.g. that a retried write was de-duplicated, not applied twice.

Example::

    from pymongo import MongoClient
    from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats

    with SimulatedReplicaSet() as rs, fast_heartbeats():
        client = MongoClient(rs.uri, heartbeatFrequencyMS=100)
        client.db.things.insert_one({"x": 1})
        rs.step_down()                       # member 1 becomes primary with a new electionId
        client.db.things.insert_one({"x": 2})  # pymongo follows the new primary
        client.close()

Behaviour worth knowing:

- Member 0 starts as primary.  ``step_down()`` elects the next live member; ``kill()`` of the primary leaves
  no primary until ``elect()``/``step_down()`` unless ``election_seconds`` is given.  A restarted member
  comes back as a secondary.
- Secondaries refuse writes with 10107 NotWritablePrimary (label ``RetryableWriteError``) and primary-only
  reads with 13435 NotPrimaryNoSecondaryOk; so does every member during an election window.
- Retryable writes are de-duplicated by (lsid, txnNumber) across members, like mongod's transaction table.
- Members answer awaitable (streaming) hellos and wake them at once on a topology change, so pymongo notices a
  step-down within milliseconds instead of a heartbeat period (``streaming=False`` turns this off).
- ``fast_heartbeats()`` lets clients use ``heartbeatFrequencyMS`` below pymongo's 500 ms floor, and
  ``wait_for(condition)`` polls with a deadline, so tests wait for events instead of sleeping.
- In this repository's tests, the ``sim_cluster`` fixture gives a fresh 3-member set per test and the
  ``fast_heartbeats`` fixture wraps the helper (see ``tests/conftest.py``).
- Handshakes are not recorded.  Members put right at the protocol layer what they can of the backend's
  differences from MongoDB (index names, ``_id`` types, duplicate-key details) and refuse options it would
  drop; the rest is listed in tests/sim/test_conformance.py and the README.  Lag is only reported: reads on a
  "lagging" secondary see current data.
"""

from __future__ import annotations

from mongomancy.testing.backend import Backend, MongodBackend, NxBackend, make_backend, start_backend
from mongomancy.testing.faults import FailPoint
from mongomancy.testing.member import MAX_WIRE_VERSION
from mongomancy.testing.records import CommandRecord, Outcome
from mongomancy.testing.replica_set import MemberInfo, SimulatedReplicaSet, fast_heartbeats, wait_for

__all__ = [
    "MAX_WIRE_VERSION",
    "Backend",
    "CommandRecord",
    "FailPoint",
    "MemberInfo",
    "MongodBackend",
    "NxBackend",
    "Outcome",
    "SimulatedReplicaSet",
    "fast_heartbeats",
    "make_backend",
    "start_backend",
    "wait_for",
]
