"""The seed README's usage example, verbatim apart from the address, plus the default database name.

The only changes to the example: ``Engine("localhost", 27017)`` becomes ``Engine(sim_cluster.uri)`` (the
simulated replica set's URI, given as the positional host like a real deployment's connection string),
and the engine is disposed at the end.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from mongomancy.testing import SimulatedReplicaSet


def test_seed_usage_example_runs_as_written(sim_cluster: SimulatedReplicaSet) -> None:
    # --- the seed README's example -----------------------------------------------------------------
    import logging  # noqa: PLC0415 (the example's own imports, kept as written)

    from mongomancy import CollectionDefinition, Database, Engine, Index  # noqa: PLC0415

    engine = Engine(sim_cluster.uri)
    try:
        logger = logging.getLogger(__name__)
        db = Database(engine=engine, logger=logger)
        game = CollectionDefinition(name="game", indices=[Index(fields={"genre": 1})])
        player = CollectionDefinition(name="player", indices=[Index(fields={"player_id": 1}, unique=True)])
        db.add_collection(game)
        db.add_collection(player)
        db.create_all()
        db["game"].find({"genre": "adventure"})
        # --- end of the example; what it did -------------------------------------------------------
        assert list(db["game"].find({"genre": "adventure"})) == []
        db["game"].insert_one({"title": "Monkey Island", "genre": "adventure"})
        found: list[dict[str, Any]] = list(db["game"].find({"genre": "adventure"}, {"_id": 0}))
        assert found == [{"title": "Monkey Island", "genre": "adventure"}]
        assert db.name == "mongomancy"
        raw = engine.client[db.name]
        assert set(raw.list_collection_names()) == {"game", "player"}
        assert [index["key"] for index in raw.player.list_indexes() if index.get("unique")] == [
            {"player_id": 1}
        ]
        assert db.plan().is_empty
        db.close()
    finally:
        engine.dispose()


def test_default_name_comes_from_the_uri_path(sim_cluster: SimulatedReplicaSet) -> None:
    from mongomancy import Database, Engine  # noqa: PLC0415 (as in the example above)

    uri = sim_cluster.uri.replace("/?", "/appdb?")
    assert "/appdb?" in uri
    engine = Engine(uri=uri)
    try:
        with Database(engine) as from_uri, Database(engine, name="other") as explicit:
            assert from_uri.name == "appdb"
            assert explicit.name == "other"
    finally:
        engine.dispose()


def test_with_nothing_listening_the_error_says_where_and_why() -> None:
    from mongomancy import Engine, RetryBudgetExhaustedError, RetryPolicy  # noqa: PLC0415

    port = free_loopback_port()
    engine = Engine("127.0.0.1", port, retry_policy=RetryPolicy(budget=1.0))
    try:
        game = engine.client.mongomancy.game
        with pytest.raises(RetryBudgetExhaustedError) as info:
            engine.find_one(game, {"genre": "adventure"})
        assert f"127.0.0.1:{port}" in str(info.value)  # where
        assert info.value.addresses == (f"127.0.0.1:{port}",)
        assert isinstance(info.value.__cause__, AutoReconnect)  # why: the topology's last error
        assert "refused" in str(info.value.__cause__).lower()
    finally:
        engine.dispose()


def free_loopback_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
