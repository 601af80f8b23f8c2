"""Pure planning (mongomancy.schema.plan) against recorded server answers.

The ``listCollections`` / ``listIndexes`` documents below are written the way MongoDB 6.0/7.0 return
them (``v``, ``ns`` on old servers, ``textIndexVersion``, fully expanded collations, ``Int64`` and
double numbers, the ``{_fts, _ftsx}`` key of text indexes...), so the normalisation is tested against what
real servers say, without a server.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson.int64 import Int64

from mongomancy.errors import IndexConflictError, SchemaError
from mongomancy.schema.apply import apply_plan
from mongomancy.schema.definitions import CollectionDefinition, Document, Index, TimeSeries
from mongomancy.schema.live import LiveCollection, LiveState
from mongomancy.schema.plan import (
    CollectionConflict,
    CreateCollection,
    CreateIndex,
    ExtraIndex,
    InsertDocument,
    ModifyCollection,
    Plan,
    plan,
)

ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}

EN_COLLATION_EXPANDED = {
    "locale": "en",
    "caseLevel": False,
    "caseFirst": "off",
    "strength": 2,
    "numericOrdering": False,
    "alternate": "non-ignorable",
    "maxVariable": "punct",
    "normalization": False,
    "backwards": False,
    "version": "57.1",
}


def collection_info(
    name: str, options: dict[str, Any] | None = None, type_: str = "collection"
) -> dict[str, Any]:
    """A listCollections entry as MongoDB 6/7 returns it."""
    return {
        "name": name,
        "type": type_,
        "options": options or {},
        "info": {"readOnly": False, "uuid": "not-compared"},
        "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    }


def live_of(
    *collections: LiveCollection, documents: tuple[tuple[str, dict[str, Any]], ...] = ()
) -> LiveState:
    return LiveState(collections=collections, present_documents=documents)


def live_collection(
    name: str, *indexes: dict[str, Any], options: dict[str, Any] | None = None
) -> LiveCollection:
    return LiveCollection.from_server(collection_info(name, options), [ID_INDEX, *indexes])


def never_execute(description: str, fn: Any) -> Any:
    raise AssertionError(f"nothing should run, but {description!r} did")


# --------------------------------------------------------------------------------------------------
# Nothing exists / everything exists
# --------------------------------------------------------------------------------------------------

GAME = CollectionDefinition(
    "game",
    indices=[
        Index({"genre": 1}),
        Index({"created": 1}, expire_after_seconds=3600),
        Index([("slug", 1)], unique=True),
    ],
    default_docs=[Document({"slug": "chess"}, {"slug": "chess", "genre": "board"})],
)


def test_empty_database_plans_everything() -> None:
    result = plan([GAME], LiveState())
    assert result.create_collections == (CreateCollection("game", {}),)
    assert [c.index.name for c in result.create_indexes] == ["created_1", "genre_1", "slug_1"]
    assert result.insert_documents == (InsertDocument("game", GAME.default_docs[0]),)
    assert not result.is_empty
    assert str(result).splitlines() == [
        "+ create collection game",
        "+ create index game.created_1 {'key': {'created': 1}, 'expireAfterSeconds': 3600}",
        "+ create index game.genre_1 {'key': {'genre': 1}}",
        "+ create index game.slug_1 {'key': {'slug': 1}, 'unique': True}",
        "+ insert default document game {'slug': 'chess'}",
    ]


def test_everything_present_under_server_names_is_an_empty_plan() -> None:
    # Server names differ (as the simulator backend does): indexes are matched by key and options.
    live = live_of(
        live_collection(
            "game",
            {"v": 2, "key": {"genre": 1}, "name": "idx_game_genre"},
            {"v": 2, "key": {"created": 1}, "name": "idx_game_created", "expireAfterSeconds": 3600},
            {"v": 2, "key": {"slug": 1}, "name": "idx_game_slug", "unique": True},
        ),
        documents=(("game", {"slug": "chess"}),),
    )
    result = plan([GAME], live)
    assert result.is_empty
    assert result == Plan()
    assert str(result) == "No changes: the database matches the definitions."


def test_server_bookkeeping_and_number_types_are_normalised() -> None:
    live = live_of(
        live_collection(
            "game",
            {"v": 1, "key": {"genre": 1.0}, "name": "genre_1", "ns": "db.game", "background": True},
            {
                "v": 2,
                "key": {"created": Int64(1)},
                "name": "created_1",
                "expireAfterSeconds": 3600.0,
                "unique": False,
                "sparse": False,
            },
            {"v": 2, "key": {"slug": 1}, "name": "slug_1", "unique": True, "hidden": False},
        ),
        documents=(("game", {"slug": "chess"}),),
    )
    assert plan([GAME], live).is_empty


# --------------------------------------------------------------------------------------------------
# Option changes: in place vs drop and re-create
# --------------------------------------------------------------------------------------------------


def one_index_plan(
    defined: Index, *live_indexes: dict[str, Any], options: dict[str, Any] | None = None
) -> Plan:
    definition = CollectionDefinition("c", indices=[defined])
    return plan([definition], live_of(live_collection("c", *live_indexes, options=options)))


def test_ttl_change_is_in_place() -> None:
    result = one_index_plan(
        Index({"created": 1}, expire_after_seconds=7200),
        {"v": 2, "key": {"created": 1}, "name": "created_1", "expireAfterSeconds": 3600},
    )
    assert not result.recreate_indexes and not result.create_indexes
    (change,) = result.modify_indexes
    assert dict(change.differences) == {"expireAfterSeconds": (3600, 7200)}
    assert change.collmod_index() == {"name": "created_1", "expireAfterSeconds": 7200}
    assert str(result) == "~ modify index c.created_1 (collMod): expireAfterSeconds 3600 -> 7200"


def test_adding_ttl_is_in_place_but_removing_it_needs_a_recreate() -> None:
    added = one_index_plan(
        Index({"created": 1}, expire_after_seconds=60), {"v": 2, "key": {"created": 1}, "name": "created_1"}
    )
    assert len(added.modify_indexes) == 1
    removed = one_index_plan(
        Index({"created": 1}), {"v": 2, "key": {"created": 1}, "name": "created_1", "expireAfterSeconds": 60}
    )
    assert not removed.modify_indexes
    assert dict(removed.recreate_indexes[0].differences) == {"expireAfterSeconds": (60, None)}


def test_hidden_change_is_in_place() -> None:
    result = one_index_plan(Index({"a": 1}, hidden=True), {"v": 2, "key": {"a": 1}, "name": "a_1"})
    (change,) = result.modify_indexes
    assert change.collmod_index() == {"name": "a_1", "hidden": True}
    unhide = one_index_plan(Index({"a": 1}), {"v": 2, "key": {"a": 1}, "name": "a_1", "hidden": True})
    assert unhide.modify_indexes[0].collmod_index() == {"name": "a_1", "hidden": False}


def test_unique_change_is_built_beside_the_old_index() -> None:
    result = one_index_plan(
        Index({"slug": 1}, unique=True), {"v": 2, "key": {"slug": 1}, "name": "idx_c_slug"}
    )
    assert not result.modify_indexes and not result.create_indexes
    (change,) = result.recreate_indexes
    assert change.live_name == "idx_c_slug"
    assert change.replacement_name == "slug_1"  # the declared name is free: the new index gets it
    assert dict(change.differences) == {"unique": (None, True)}
    assert str(result) == (
        "-/+ replace index c.slug_1 (live name idx_c_slug): unique None -> True"
        " (built beside as slug_1, then the old one dropped; needs allow_drop=True)"
    )


def test_replacement_under_a_taken_name_gets_a_derived_name() -> None:
    result = one_index_plan(Index({"slug": 1}, unique=True), {"v": 2, "key": {"slug": 1}, "name": "slug_1"})
    (change,) = result.recreate_indexes
    assert change.replacement_name is not None
    assert (
        change.replacement_name.startswith("slug_1_") and len(change.replacement_name) == len("slug_1_") + 8
    )
    again = one_index_plan(Index({"slug": 1}, unique=True), {"v": 2, "key": {"slug": 1}, "name": "slug_1"})
    assert again.recreate_indexes[0].replacement_name == change.replacement_name  # every process agrees


def test_live_unique_index_satisfies_a_definition_without_unique() -> None:
    result = one_index_plan(
        Index({"email": 1}), {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True}
    )
    assert result.is_empty
    (note,) = result.notes
    assert note.live_name == "email_1"
    assert "never relaxes a constraint" in str(note)


def test_ttl_removal_cannot_be_built_beside() -> None:
    result = one_index_plan(
        Index({"a": 1}), {"v": 2, "key": {"a": 1}, "name": "a_1", "expireAfterSeconds": 60}
    )
    (change,) = result.recreate_indexes
    assert not change.beside
    assert "the server cannot hold both" in change.describe_recreate()


def test_mixed_in_place_and_recreate_changes_need_a_recreate() -> None:
    result = one_index_plan(
        Index({"t": 1}, expire_after_seconds=10, unique=True),
        {"v": 2, "key": {"t": 1}, "name": "t_1", "expireAfterSeconds": 5},
    )
    assert len(result.recreate_indexes) == 1
    assert set(result.recreate_indexes[0].differences) == {"expireAfterSeconds", "unique"}


@pytest.mark.parametrize(
    ("defined", "live_index", "option"),
    [
        (Index({"a": 1}, sparse=True), {"v": 2, "key": {"a": 1}, "name": "a_1"}, "sparse"),
        (
            Index({"a": 1}, partial_filter_expression={"a": {"$gt": 5}}),
            {"v": 2, "key": {"a": 1}, "name": "a_1", "partialFilterExpression": {"a": {"$gt": 1}}},
            "partialFilterExpression",
        ),
        (
            Index({"a": 1}, collation={"locale": "en", "strength": 1}),
            {"v": 2, "key": {"a": 1}, "name": "a_1", "collation": EN_COLLATION_EXPANDED},
            "collation",
        ),
        (
            Index({"a": 1}),
            {"v": 2, "key": {"a": 1}, "name": "a_1", "collation": EN_COLLATION_EXPANDED},
            "collation",
        ),
    ],
)
def test_other_option_changes_need_a_recreate(
    defined: Index, live_index: dict[str, Any], option: str
) -> None:
    result = one_index_plan(defined, live_index)
    (change,) = result.recreate_indexes
    assert set(change.differences) == {option}


def test_partial_filter_numbers_compare_by_value() -> None:
    result = one_index_plan(
        Index({"a": 1}, partial_filter_expression={"a": {"$gt": 5}}),
        {"v": 2, "key": {"a": 1}, "name": "a_1", "partialFilterExpression": {"a": {"$gt": 5.0}}},
    )
    assert result.is_empty


def test_collation_compares_only_the_fields_the_definition_states() -> None:
    result = one_index_plan(
        Index({"name": 1}, collation={"locale": "en", "strength": 2}),
        {"v": 2, "key": {"name": 1}, "name": "name_1", "collation": EN_COLLATION_EXPANDED},
    )
    assert result.is_empty


def test_indexes_inherit_the_collection_collation() -> None:
    # On a collection with a default collation, listIndexes shows it on every index created without one.
    definition = CollectionDefinition(
        "people", indices=[Index({"name": 1})], collation={"locale": "en", "strength": 2}
    )
    live = live_of(
        live_collection(
            "people",
            {"v": 2, "key": {"name": 1}, "name": "name_1", "collation": EN_COLLATION_EXPANDED},
            options={"collation": EN_COLLATION_EXPANDED},
        )
    )
    assert plan([definition], live).is_empty
    # and without the definition stating it, the live collection's collation is inherited too
    undeclared = CollectionDefinition("people", indices=[Index({"name": 1})])
    assert plan([undeclared], live).is_empty


def test_simple_collation_equals_none() -> None:
    result = one_index_plan(
        Index({"a": 1}, collation={"locale": "simple"}), {"v": 2, "key": {"a": 1}, "name": "a_1"}
    )
    assert result.is_empty


def test_direction_is_part_of_the_key() -> None:
    result = one_index_plan(Index({"a": -1}), {"v": 2, "key": {"a": 1}, "name": "a_1"})
    assert [c.index.name for c in result.create_indexes] == ["a_-1"]
    assert result.extra_indexes == (ExtraIndex("c", "a_1", {"a": 1}),)


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


def test_renamed_but_identical_index_is_present() -> None:
    result = one_index_plan(
        Index({"a": 1, "b": -1}, name="by_a_b", unique=True),
        {"v": 2, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1", "unique": True},
    )
    assert result.is_empty
    assert not result.extra_indexes


def test_name_clash_creates_under_another_name_and_drops_nothing() -> None:
    result = one_index_plan(Index({"a": 1}, name="lookup"), {"v": 2, "key": {"b": 1}, "name": "lookup"})
    assert not result.recreate_indexes and not result.drop_indexes
    (create,) = result.create_indexes
    assert create.name.startswith("lookup_") and create.spec()["name"] == create.name
    assert result.extra_indexes == (ExtraIndex("c", "lookup", {"b": 1}),)  # nobody declared it: kept


def test_name_clash_with_an_index_another_definition_uses_is_a_match_for_that_one() -> None:
    definition = CollectionDefinition(
        "c", indices=[Index({"a": 1}, name="lookup"), Index({"b": 1}, name="by_b")]
    )
    live = live_of(live_collection("c", {"v": 2, "key": {"b": 1}, "name": "lookup"}))
    result = plan([definition], live)
    assert not result.recreate_indexes
    assert [c.index.name for c in result.create_indexes] == ["lookup"]  # by_b is the live "lookup"
    assert not result.extra_indexes


def test_several_live_indexes_with_the_same_key_pick_the_identical_one() -> None:
    definition = CollectionDefinition("c", indices=[Index({"a": 1}, collation={"locale": "fr"})])
    live = live_of(
        live_collection(
            "c",
            {"v": 2, "key": {"a": 1}, "name": "a_1"},
            {"v": 2, "key": {"a": 1}, "name": "a_1_fr", "collation": {"locale": "fr", "strength": 3}},
        )
    )
    result = plan([definition], live)
    assert result.is_empty
    assert result.extra_indexes == (ExtraIndex("c", "a_1", {"a": 1}),)


# --------------------------------------------------------------------------------------------------
# Extra indexes
# --------------------------------------------------------------------------------------------------


def test_extra_index_is_reported_not_dropped() -> None:
    definition = CollectionDefinition("c", indices=[Index({"a": 1})])
    live = live_of(
        live_collection(
            "c", {"v": 2, "key": {"a": 1}, "name": "a_1"}, {"v": 2, "key": {"old": 1}, "name": "old_1"}
        )
    )
    result = plan([definition], live)
    assert result.is_empty
    assert result.extra_indexes == (ExtraIndex("c", "old_1", {"old": 1}),)
    assert str(result).splitlines() == [
        "No changes: the database matches the definitions.",
        "? extra index c.old_1 {'old': 1} (not defined; left in place)",
    ]
    applied = apply_plan(result, never_execute)
    assert applied.extra_indexes == ("c.old_1",)
    assert not applied.changed


def test_id_index_is_never_extra() -> None:
    assert not plan([CollectionDefinition("c")], live_of(live_collection("c"))).extra_indexes


# --------------------------------------------------------------------------------------------------
# Text, geo and hashed indexes as listIndexes shows them
# --------------------------------------------------------------------------------------------------


TEXT_LIVE = {
    "v": 2,
    "key": {"_fts": "text", "_ftsx": 1},
    "name": "title_text_body_text",
    "weights": {"body": 1, "title": 10},
    "default_language": "english",
    "language_override": "language",
    "textIndexVersion": 3,
}


def test_text_index_is_normalised() -> None:
    result = one_index_plan(Index({"title": "text", "body": "text"}, weights={"title": 10}), TEXT_LIVE)
    assert result.is_empty
    assert not result.extra_indexes


def test_text_index_weight_change_needs_a_recreate() -> None:
    result = one_index_plan(Index({"title": "text", "body": "text"}, weights={"title": 5}), TEXT_LIVE)
    (change,) = result.recreate_indexes
    assert dict(change.differences) == {"weights": ({"body": 1, "title": 10}, {"title": 5, "body": 1})}


def test_text_index_language_change_needs_a_recreate() -> None:
    result = one_index_plan(
        Index({"title": "text", "body": "text"}, weights={"title": 10}, default_language="french"), TEXT_LIVE
    )
    assert set(result.recreate_indexes[0].differences) == {"default_language"}


def test_compound_text_index_keeps_prefix_and_suffix() -> None:
    live_index = {
        "v": 2,
        "key": {"tenant": 1, "_fts": "text", "_ftsx": 1, "year": -1},
        "name": "tenant_1_about_text_year_-1",
        "weights": {"about": 1},
        "default_language": "english",
        "language_override": "language",
        "textIndexVersion": 3,
    }
    assert one_index_plan(Index([("tenant", 1), ("about", "text"), ("year", -1)]), live_index).is_empty


def test_wildcard_text_index() -> None:
    live_index = {**TEXT_LIVE, "name": "$**_text", "weights": {"$**": 1}}
    assert one_index_plan(Index({"$**": "text"}), live_index).is_empty


def test_geo_and_hashed_versions_are_ignored() -> None:
    definition = CollectionDefinition("places", indices=[Index({"loc": "2dsphere"}), Index({"h": "hashed"})])
    live = live_of(
        live_collection(
            "places",
            {"v": 2, "key": {"loc": "2dsphere"}, "name": "loc_2dsphere", "2dsphereIndexVersion": 3},
            {"v": 2, "key": {"h": "hashed"}, "name": "h_hashed"},
        )
    )
    assert plan([definition], live).is_empty


def test_2d_defaults_equal_absent() -> None:
    result = one_index_plan(
        Index({"pos": "2d"}),
        {"v": 2, "key": {"pos": "2d"}, "name": "pos_2d", "bits": 26, "min": -180.0, "max": 180.0},
    )
    assert result.is_empty


def test_wildcard_projection_compared() -> None:
    live_index = {"v": 2, "key": {"$**": 1}, "name": "$**_1", "wildcardProjection": {"a": True, "b": True}}
    assert one_index_plan(Index({"$**": 1}, wildcard_projection={"a": 1, "b": 1}), live_index).is_empty
    changed = one_index_plan(Index({"$**": 1}, wildcard_projection={"a": 1}), live_index)
    assert set(changed.recreate_indexes[0].differences) == {"wildcardProjection"}


# --------------------------------------------------------------------------------------------------
# Collection options
# --------------------------------------------------------------------------------------------------


def options_plan(
    definition: CollectionDefinition, options: dict[str, Any], type_: str = "collection"
) -> Plan:
    live = LiveCollection.from_server(collection_info(definition.name, options, type_), [ID_INDEX])
    return plan([definition], live_of(live))


def test_validator_change_is_a_collmod() -> None:
    definition = CollectionDefinition(
        "people",
        validator={"$jsonSchema": {"required": ["name", "email"]}},
        validation_level="moderate",
        validation_action="warn",
    )
    live_options = {
        "validator": {"$jsonSchema": {"required": ["name"]}},
        "validationLevel": "strict",
        "validationAction": "error",
    }
    result = options_plan(definition, live_options)
    (change,) = result.modify_collections
    assert change.command() == {
        "validator": {"$jsonSchema": {"required": ["name", "email"]}},
        "validationLevel": "moderate",
        "validationAction": "warn",
    }
    assert str(result).startswith("~ modify collection people (collMod): validator ")
    same = options_plan(
        definition,
        {
            **live_options,
            "validator": definition.validator,
            "validationLevel": "moderate",
            "validationAction": "warn",
        },
    )
    assert same.is_empty


def test_validation_defaults_and_unmanaged_options() -> None:
    # validationLevel/validationAction default to strict/error; options left None are not managed.
    assert options_plan(
        CollectionDefinition("c", validation_level="strict", validation_action="error"), {}
    ).is_empty
    hand_made = {"validator": {"x": {"$exists": True}}, "validationLevel": "moderate"}
    assert options_plan(CollectionDefinition("c"), hand_made).is_empty
    removal = options_plan(CollectionDefinition("c", validator={}), hand_made)
    assert removal.modify_collections[0].command() == {"validator": {}}


def test_capped_size_is_compared_with_server_rounding() -> None:
    definition = CollectionDefinition("log", capped=True, size=1000, max=50)
    assert options_plan(definition, {"capped": True, "size": 4096, "max": 50}).is_empty
    assert options_plan(definition, {"capped": True, "size": 1000, "max": Int64(50)}).is_empty
    grown = options_plan(definition, {"capped": True, "size": 8192, "max": 10})
    assert grown.modify_collections[0].command() == {"cappedSize": 1000, "cappedMax": 50}


def test_capping_an_existing_collection_is_a_conflict() -> None:
    result = options_plan(CollectionDefinition("log", capped=True, size=4096), {})
    assert result.collection_conflicts == (CollectionConflict("log", {"capped": (False, True)}),)
    assert str(result) == "! cannot change collection log: capped False -> True (needs a manual migration)"
    with pytest.raises(SchemaError, match="never drops a collection"):
        apply_plan(result, never_execute, allow_drop=True)


TIMESERIES_LIVE: dict[str, Any] = {
    "timeseries": {
        "timeField": "ts",
        "metaField": "sensor",
        "granularity": "seconds",
        "bucketMaxSpanSeconds": 3600,
    },
    "expireAfterSeconds": Int64(86400),
}


def test_timeseries_as_listed_is_present() -> None:
    definition = CollectionDefinition(
        "metrics", timeseries=TimeSeries("ts", "sensor"), expire_after_seconds=86400
    )
    assert options_plan(definition, TIMESERIES_LIVE, "timeseries").is_empty


def test_timeseries_granularity_can_only_grow_in_place() -> None:
    grow = CollectionDefinition("metrics", timeseries=TimeSeries("ts", "sensor", "minutes"))
    result = options_plan(grow, TIMESERIES_LIVE, "timeseries")
    assert result.modify_collections[0].command() == {"timeseries": {"granularity": "minutes"}}
    shrink_live = {"timeseries": {**TIMESERIES_LIVE["timeseries"], "granularity": "hours"}}
    shrink = options_plan(grow, shrink_live, "timeseries")
    assert set(shrink.collection_conflicts[0].differences) == {"timeseries.granularity"}


def test_timeseries_fields_and_ttl() -> None:
    other_field = CollectionDefinition("metrics", timeseries=TimeSeries("time", "sensor"))
    result = options_plan(other_field, TIMESERIES_LIVE, "timeseries")
    assert set(result.collection_conflicts[0].differences) == {"timeseries.timeField"}
    ttl = CollectionDefinition("metrics", timeseries=TimeSeries("ts", "sensor"), expire_after_seconds=60)
    assert options_plan(ttl, TIMESERIES_LIVE, "timeseries").modify_collections[0].command() == {
        "expireAfterSeconds": 60
    }
    not_timeseries = options_plan(CollectionDefinition("metrics", timeseries=TimeSeries("ts")), {})
    assert set(not_timeseries.collection_conflicts[0].differences) == {"timeseries"}


def test_collection_collation_change_is_a_conflict() -> None:
    definition = CollectionDefinition("people", collation={"locale": "en", "strength": 1})
    result = options_plan(definition, {"collation": EN_COLLATION_EXPANDED})
    assert set(result.collection_conflicts[0].differences) == {"collation"}
    assert options_plan(
        CollectionDefinition("people", collation={"locale": "en", "strength": 2}),
        {"collation": EN_COLLATION_EXPANDED},
    ).is_empty


def test_a_view_is_a_conflict() -> None:
    result = options_plan(CollectionDefinition("v"), {"viewOn": "c", "pipeline": []}, "view")
    assert dict(result.collection_conflicts[0].differences) == {"type": ("view", "collection")}


def test_create_collection_carries_create_options() -> None:
    definition = CollectionDefinition("log", capped=True, size=8192)
    assert plan([definition], LiveState()).create_collections == (
        CreateCollection("log", {"capped": True, "size": 8192}),
    )
    assert (
        str(plan([definition], LiveState())).splitlines()[0]
        == "+ create collection log {'capped': True, 'size': 8192}"
    )


# --------------------------------------------------------------------------------------------------
# Default documents
# --------------------------------------------------------------------------------------------------


def test_only_missing_default_documents_are_planned() -> None:
    definition = CollectionDefinition(
        "roles",
        default_docs=[
            Document({"name": "admin"}, {"name": "admin"}),
            Document({"name": "guest"}, {"name": "guest"}),
        ],
    )
    live = live_of(live_collection("roles"), documents=(("roles", {"name": "admin"}),))
    assert plan([definition], live).insert_documents == (InsertDocument("roles", definition.default_docs[1]),)


# --------------------------------------------------------------------------------------------------
# Plan as a value
# --------------------------------------------------------------------------------------------------


def test_plan_is_deterministic_and_comparable() -> None:
    other = CollectionDefinition("aardvark", indices=[Index({"z": 1}), Index({"b": 1})])
    live = live_of(live_collection("game", {"v": 2, "key": {"extra": 1}, "name": "extra_1"}))
    first = plan([GAME, other], live)
    second = plan([other, GAME], live)
    assert first == second
    assert hash(first) == hash(second)
    assert str(first) == str(second)
    assert [(c.collection, c.index.name) for c in first.create_indexes] == [
        ("aardvark", "b_1"),
        ("aardvark", "z_1"),
        ("game", "created_1"),
        ("game", "genre_1"),
        ("game", "slug_1"),
    ]
    assert first != plan([GAME], live)


def test_str_orders_lines_as_apply_runs_them() -> None:
    definition = CollectionDefinition(
        "c",
        indices=[Index({"t": 1}, expire_after_seconds=5), Index({"u": 1}, unique=True), Index({"n": 1})],
        default_docs=[Document({"k": 1}, {"k": 1})],
        validation_level="moderate",
    )
    live = live_of(
        live_collection(
            "c",
            {"v": 2, "key": {"t": 1}, "name": "t_1", "expireAfterSeconds": 1},
            {"v": 2, "key": {"u": 1}, "name": "u_1"},
            {"v": 2, "key": {"x": 1}, "name": "x_1"},
        ),
        LiveCollection("unrelated"),
    )
    lines = str(plan([definition, CollectionDefinition("new")], live)).splitlines()
    assert [line.split(" ")[0] for line in lines] == ["+", "~", "-/+", "~", "+", "+", "?"]
    assert lines[0] == "+ create collection new"
    assert lines[1] == "~ modify collection c (collMod): validationLevel 'strict' -> 'moderate'"


# --------------------------------------------------------------------------------------------------
# apply_plan refuses before changing anything
# --------------------------------------------------------------------------------------------------


def test_recreate_without_allow_drop_raises_before_any_change() -> None:
    definition = CollectionDefinition("c", indices=[Index({"slug": 1}, unique=True)])
    live = live_of(live_collection("c", {"v": 2, "key": {"slug": 1}, "name": "idx_c_slug"}))
    result = plan([definition, CollectionDefinition("other")], live)
    assert result.create_collections  # there is other work, and none of it may run
    with pytest.raises(IndexConflictError) as info:
        apply_plan(result, never_execute)
    error = info.value
    assert error.collection == "c"
    assert error.index == "slug_1"
    assert error.differences == {"unique": (None, True)}
    assert "allow_drop=True" in str(error)
    assert "unique None -> True" in str(error)


def test_live_state_helpers() -> None:
    document = Document({"k": 1}, {"k": 1, "x": 2})
    state = LiveState(collections={"c": LiveCollection("c")}, present_documents=[("c", {"k": 1})])
    assert state.collection("c") == LiveCollection("c")
    assert state.collection("missing") is None
    assert state.has_document("c", document)
    assert not state.has_document("d", document)
    assert state == LiveState(collections=[LiveCollection("c")], present_documents=[("c", {"k": 1})])


def test_plan_actions_describe_themselves() -> None:
    assert str(CreateIndex("c", Index({"a": 1}, name="x"))) == "+ create index c.x {'key': {'a': 1}}"
    assert str(ModifyCollection("c", {"validationAction": ("error", "warn")})) == (
        "~ modify collection c (collMod): validationAction 'error' -> 'warn'"
    )


# --------------------------------------------------------------------------------------------------
# Drift the 0.2 planner missed (issue 11), on recorded server answers
# --------------------------------------------------------------------------------------------------


def test_collation_is_compared_in_full_with_the_locale_defaults() -> None:
    # {"locale": "en"} means strength 3; a live strength 2 (case-insensitive) is another collation.
    drifted = one_index_plan(
        Index({"name": 1}, collation={"locale": "en"}),
        {"v": 2, "key": {"name": 1}, "name": "name_1", "collation": EN_COLLATION_EXPANDED},
    )
    (change,) = drifted.recreate_indexes
    assert change.differences["collation"][0]["strength"] == 2 and change.beside
    same = one_index_plan(
        Index({"name": 1}, collation={"locale": "en"}),
        {"v": 2, "key": {"name": 1}, "name": "name_1", "collation": {**EN_COLLATION_EXPANDED, "strength": 3}},
    )
    assert same.is_empty


def test_collection_collation_is_compared_in_full() -> None:
    definition = CollectionDefinition("people", collation={"locale": "en"})
    live = live_of(live_collection("people", options={"collation": EN_COLLATION_EXPANDED}))
    (conflict,) = plan([definition], live).collection_conflicts
    assert "collation" in dict(conflict.differences)


def test_partial_filter_embedded_document_order_matters_but_field_order_does_not() -> None:
    defined = Index({"a": 1}, partial_filter_expression={"addr": {"city": "x", "zip": 1}, "n": {"$gt": 1}})
    reordered_fields = {"n": {"$gt": 1}, "addr": {"city": "x", "zip": 1}}
    assert one_index_plan(
        defined, {"v": 2, "key": {"a": 1}, "name": "a_1", "partialFilterExpression": reordered_fields}
    ).is_empty
    swapped_embedded = {"addr": {"zip": 1, "city": "x"}, "n": {"$gt": 1}}
    drifted = one_index_plan(
        defined, {"v": 2, "key": {"a": 1}, "name": "a_1", "partialFilterExpression": swapped_embedded}
    )
    assert [set(change.differences) for change in drifted.recreate_indexes] == [{"partialFilterExpression"}]


def test_validator_embedded_document_order_matters() -> None:
    definition = CollectionDefinition("c", validator={"kind": {"a": 1, "b": 2}})
    same = live_of(live_collection("c", options={"validator": {"kind": {"a": 1, "b": 2}}}))
    assert plan([definition], same).is_empty
    swapped = live_of(live_collection("c", options={"validator": {"kind": {"b": 2, "a": 1}}}))
    (modify,) = plan([definition], swapped).modify_collections
    assert set(modify.changes) == {"validator"}


def test_a_live_capped_or_time_series_collection_is_not_a_plain_one() -> None:
    plain = CollectionDefinition("c")
    capped = live_of(live_collection("c", options={"capped": True, "size": 4096}))
    (conflict,) = plan([plain], capped).collection_conflicts
    assert dict(conflict.differences) == {"capped": (True, False)}
    timeseries = live_of(
        LiveCollection.from_server(
            collection_info(
                "c", {"timeseries": {"timeField": "t", "granularity": "seconds"}}, type_="timeseries"
            ),
            [],
        )
    )
    (conflict,) = plan([plain], timeseries).collection_conflicts
    assert "timeseries" in dict(conflict.differences)


def test_the_automatic_time_series_index_is_not_extra() -> None:
    definition = CollectionDefinition("m", timeseries=TimeSeries("t", meta_field="sensor"))
    live = live_of(
        LiveCollection.from_server(
            collection_info(
                "m",
                {"timeseries": {"timeField": "t", "metaField": "sensor", "granularity": "seconds"}},
                "timeseries",
            ),
            [{"v": 2, "key": {"sensor": 1, "t": 1}, "name": "sensor_1_t_1"}],  # MongoDB 6.3+ creates it
        )
    )
    result = plan([definition], live)
    assert result.is_empty and not result.extra_indexes


def test_drop_undeclared_plans_drops_except_kept_ones() -> None:
    definition = CollectionDefinition("c", indices=[Index({"a": 1})])
    live = live_of(
        live_collection(
            "c",
            {"v": 2, "key": {"a": 1}, "name": "a_1"},
            {"v": 2, "key": {"old": 1}, "name": "old_1"},
            {"v": 2, "key": {"dba": 1}, "name": "dba_made"},
        )
    )
    assert not plan([definition], live).drop_indexes  # opt-in only
    result = plan([definition], live, drop_undeclared=True, keep=["c.dba_made"])
    assert [e.name for e in result.drop_indexes] == ["old_1"]
    assert [e.name for e in result.extra_indexes] == ["dba_made"]
    assert not result.is_empty and "- drop undeclared index c.old_1" in str(result)


def test_plan_json_is_versioned_and_complete() -> None:
    document = plan([GAME], LiveState()).to_json()
    assert document["schema_version"] == 1 and document["kind"] == "plan" and document["empty"] is False
    assert [c["collection"] for c in document["create_collections"]] == ["game"]
    assert {i["index"] for i in document["create_indexes"]} == {i.name for i in GAME.indices}
    assert document["lines"] == plan([GAME], LiveState()).lines()
    for key in (
        "modify_collections",
        "collection_conflicts",
        "replace_indexes",
        "modify_indexes",
        "drop_indexes",
    ):
        assert document[key] == []
