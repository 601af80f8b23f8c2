"""`mongomancy schema plan|apply` as a subprocess against the simulated cluster: output, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongomancy.testing import SimulatedReplicaSet

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "schema_cli"

MODULE = textwrap.dedent(
    """
    import os

    from mongomancy.schema.definitions import CollectionDefinition, Document, Index

    DEFINITIONS = [
        CollectionDefinition(
            "game",
            indices=[Index({"slug": 1}, unique=True)],
            default_docs=[Document({"slug": "chess"}, {"slug": "chess", "players": 2})],
        )
    ]
    CAPPED = [CollectionDefinition("game", capped=True, size=4096)]
    NOT_DEFINITIONS = 42

    if "APP_MONGODB_URI" in os.environ:  # an application module that builds its own Database at import
        from mongomancy import Database, Engine

        db = Database(Engine(uri=os.environ["APP_MONGODB_URI"]), name="app_db")
        db.extend(*DEFINITIONS)
    """
)


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    (tmp_path / "cli_schema_defs.py").write_text(MODULE)
    return tmp_path


def schema_cli(module_dir: Path, *args: str, app_uri: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(module_dir), str(ROOT)])}
    if app_uri is not None:
        env["APP_MONGODB_URI"] = app_uri
    proc = subprocess.run(
        [sys.executable, "-m", "mongomancy.cli", "schema", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    return proc.returncode, proc.stdout, proc.stderr


def uri_with_database(cluster: SimulatedReplicaSet) -> str:
    return cluster.uri.replace("/?", f"/{DB_NAME}?", 1)


def test_plan_apply_json_and_exit_codes(sim_cluster: SimulatedReplicaSet, module_dir: Path) -> None:
    uri = uri_with_database(sim_cluster)
    target = "cli_schema_defs:DEFINITIONS"

    code, out, err = schema_cli(module_dir, "plan", uri, target, "--detailed-exitcode")
    assert code == 2, err
    assert "+ create collection game" in out and "+ create index game.slug_1" in out

    code, out, err = schema_cli(module_dir, "plan", uri, target, "--json")
    assert code == 0, err
    planned: dict[str, Any] = json.loads(out)
    assert (planned["schema_version"], planned["kind"], planned["empty"]) == (1, "plan", False)
    assert planned["database"] == DB_NAME
    assert [c["collection"] for c in planned["create_collections"]] == ["game"]
    assert [i["index"] for i in planned["create_indexes"]] == ["slug_1"]
    assert planned["create_indexes"][0]["spec"] == {"key": {"slug": 1}, "name": "slug_1", "unique": True}
    assert planned["insert_documents"] == [{"collection": "game", "unique_key": {"slug": "chess"}}]

    code, out, err = schema_cli(module_dir, "apply", uri, target, "--json", "--detailed-exitcode")
    assert code == 2, err
    applied: dict[str, Any] = json.loads(out)
    assert (applied["schema_version"], applied["kind"], applied["changed"]) == (1, "apply_result", True)
    assert applied["created_collections"] == ["game"]
    assert applied["created_indexes"] == ["game.slug_1"]
    assert applied["inserted_documents"] == ["game {'slug': 'chess'}"]

    with MongoClient(sim_cluster.uri) as client:  # what apply said, checked against the stored data
        stored = client[DB_NAME].game
        assert [doc["slug"] for doc in stored.find({}, {"_id": 0})] == ["chess"]
        keys = {tuple(index["key"].items()): index for index in stored.list_indexes()}
        assert keys[(("slug", 1),)].get("unique") is True

    code, out, err = schema_cli(module_dir, "plan", uri, target, "--detailed-exitcode")
    assert (code, out.strip()) == (0, "No changes: the database matches the definitions."), err
    code, out, err = schema_cli(module_dir, "apply", uri, target, "--detailed-exitcode")
    assert (code, out.strip()) == (0, "nothing to do"), err


def test_a_schema_error_exits_1_and_names_the_collection(
    sim_cluster: SimulatedReplicaSet, module_dir: Path
) -> None:
    uri = uri_with_database(sim_cluster)
    assert schema_cli(module_dir, "apply", uri, "cli_schema_defs:DEFINITIONS")[0] == 0
    code, out, err = schema_cli(module_dir, "plan", uri, "cli_schema_defs:CAPPED")
    assert code == 0 and "! cannot change collection game: capped False -> True" in out, err
    code, out, err = schema_cli(module_dir, "apply", uri, "cli_schema_defs:CAPPED", "--json")
    assert code == 1, err
    error = json.loads(out)
    assert (error["schema_version"], error["kind"]) == (1, "error")
    assert "SchemaError" in error["error"] and "game" in error["error"]
    code, out, err = schema_cli(module_dir, "apply", uri, "cli_schema_defs:CAPPED")
    assert code == 1 and "mongomancy schema: SchemaError" in err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "cli_schema_defs:NOT_DEFINITIONS",
            "must be a mongomancy Database or a list of CollectionDefinition",
        ),
        ("cli_schema_defs:MISSING", "has no attribute 'MISSING'"),
        ("no_such_module_here:x", "cannot import 'no_such_module_here'"),
        ("cli_schema_defs", "MODULE:ATTRIBUTE expected"),
    ],
)
def test_a_bad_target_is_a_usage_error(module_dir: Path, target: str, message: str) -> None:
    code, _, err = schema_cli(
        module_dir, "plan", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100", target
    )
    assert code == 3
    assert message in err


def test_a_database_attribute_gives_its_definitions_and_its_name(
    sim_cluster: SimulatedReplicaSet, module_dir: Path
) -> None:
    code, out, err = schema_cli(
        module_dir, "apply", sim_cluster.uri, "cli_schema_defs:db", "--json", app_uri=sim_cluster.uri
    )
    assert code == 0, err
    applied = json.loads(out)
    assert applied["database"] == "app_db" and applied["created_collections"] == ["game"]
    with MongoClient(sim_cluster.uri) as client:
        assert client.app_db.game.count_documents({"slug": "chess"}) == 1
