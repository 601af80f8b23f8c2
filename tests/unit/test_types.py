"""Validation, naming and immutability of the schema value objects (mongomancy.schema.definitions)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import attrs
import bson
import pytest

from mongomancy.errors import ConfigurationError
from mongomancy.schema.definitions import CollectionDefinition, Document, FrozenMap, Index, TimeSeries, thaw

# --------------------------------------------------------------------------------------------------
# Index: fields, names, specs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"a": 1}, "a_1"),
        ({"a": 1, "b": -1}, "a_1_b_-1"),
        ([("b", -1), ("a", 1)], "b_-1_a_1"),
        (OrderedDict([("genre", 1), ("year", -1)]), "genre_1_year_-1"),
        ({"title": "text", "body": "text"}, "title_text_body_text"),
        ({"loc": "2dsphere"}, "loc_2dsphere"),
        ({"loc": "2d", "x": 1}, "loc_2d_x_1"),
        ({"h": "hashed"}, "h_hashed"),
        ({"$**": 1}, "$**_1"),
        ({"a.$**": 1}, "a.$**_1"),
        ({"a.b": 1}, "a.b_1"),
        ({"a": 1.0}, "a_1"),
    ],
)
def test_default_name_follows_mongodb_convention(fields: Any, name: str) -> None:
    assert Index(fields).name == name


def test_explicit_name_is_kept() -> None:
    assert Index({"a": 1}, name="by_a").name == "by_a"


def test_seed_signature_positional() -> None:
    index = Index(OrderedDict([("player_id", 1)]), None, True)
    assert index.unique is True
    assert index.name == "player_id_1"


def test_field_for_mongo_keeps_order() -> None:
    index = Index([("b", -1), ("a", 1), ("c", "hashed")])
    assert index.field_for_mongo() == [("b", -1), ("a", 1), ("c", "hashed")]


def test_to_mongo_minimal() -> None:
    assert Index({"a": 1}).to_mongo() == {"key": {"a": 1}, "name": "a_1"}
    assert Index({"a": 1}).create_spec() == Index({"a": 1}).to_mongo()


def test_to_mongo_uses_mongodb_option_names() -> None:
    spec = Index(
        {"created": 1},
        name="ttl",
        unique=True,
        expire_after_seconds=3600,
        partial_filter_expression={"kind": {"$exists": True}},
        collation={"locale": "en", "strength": 2},
        hidden=True,
    ).to_mongo()
    assert spec == {
        "key": {"created": 1},
        "name": "ttl",
        "unique": True,
        "expireAfterSeconds": 3600,
        "partialFilterExpression": {"kind": {"$exists": True}},
        "collation": {"locale": "en", "strength": 2},
        "hidden": True,
    }
    assert list(spec["key"]) == ["created"]


def test_to_mongo_text_and_wildcard_and_2d_options() -> None:
    text = Index(
        {"title": "text", "body": "text"},
        weights={"title": 5},
        default_language="german",
        language_override="lang",
    ).to_mongo()
    assert text["weights"] == {"title": 5}
    assert text["default_language"] == "german"
    assert text["language_override"] == "lang"
    wildcard = Index({"$**": 1}, wildcard_projection={"a": 1, "b": 1}).to_mongo()
    assert wildcard["wildcardProjection"] == {"a": 1, "b": 1}
    geo = Index({"loc": "2d"}, bits=20, min=-10, max=10).to_mongo()
    assert (geo["bits"], geo["min"], geo["max"]) == (20, -10, 10)
    assert Index({"s": 1}, sparse=True).to_mongo()["sparse"] is True


def test_to_mongo_returns_plain_mutable_copies() -> None:
    index = Index({"a": 1}, partial_filter_expression={"a": {"$in": [1, 2]}})
    spec = index.to_mongo()
    assert type(spec["partialFilterExpression"]) is dict
    assert type(spec["partialFilterExpression"]["a"]["$in"]) is list
    spec["partialFilterExpression"]["a"]["$in"].append(3)
    assert index.to_mongo()["partialFilterExpression"] == {"a": {"$in": [1, 2]}}
    bson.encode(spec)  # BSON-ready


def test_false_and_none_flags_are_the_same() -> None:
    assert Index({"a": 1}, unique=False) == Index({"a": 1}, unique=None) == Index({"a": 1})
    assert "unique" not in Index({"a": 1}, unique=False).to_mongo()


def test_index_equality_is_key_order_sensitive() -> None:
    assert Index({"a": 1, "b": 1}) == Index([("a", 1), ("b", 1)])
    assert Index({"a": 1, "b": 1}, name="x") != Index({"b": 1, "a": 1}, name="x")
    assert hash(Index({"a": 1})) == hash(Index([("a", 1)]))


def test_text_flag() -> None:
    assert Index([("a", 1), ("t", "text")]).is_text
    assert not Index({"a": 1}).is_text


# --------------------------------------------------------------------------------------------------
# Index: what MongoDB would reject
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": {}}, "at least one field"),
        ({"fields": []}, "at least one field"),
        ({"fields": {"a": 2}}, "direction of 'a'"),
        ({"fields": {"a": "geoHaystack"}}, "direction of 'a'"),
        ({"fields": {"a": 0}}, "direction of 'a'"),
        ({"fields": [("a", 1), ("a", -1)]}, "more than once"),
        ({"fields": {"": 1}}, "must not be empty"),
        ({"fields": {"a..b": 1}}, "empty path component"),
        ({"fields": {"a.": 1}}, "empty path component"),
        ({"fields": {"$a": 1}}, "starts a component with '$'"),
        ({"fields": {"$**.a": 1}}, "starts a component with '$'"),
        ({"fields": {"a\0b": 1}}, "NUL"),
        ({"fields": {"a": 1, "b": 1}, "expire_after_seconds": 60}, "exactly one field"),
        ({"fields": {"_id": 1}, "expire_after_seconds": 60}, "_id field cannot"),
        ({"fields": {"$**": 1}, "expire_after_seconds": 60}, "plain ascending"),
        ({"fields": {"a": 1}, "expire_after_seconds": -1}, "at least 0"),
        ({"fields": {"a": 1}, "expire_after_seconds": 2**31}, "at most"),
        ({"fields": {"h": "hashed"}, "unique": True}, "hashed index cannot be unique"),
        ({"fields": {"$**": 1}, "unique": True}, "wildcard index cannot be unique"),
        ({"fields": {"a.$**": 1}, "unique": True}, "wildcard index cannot be unique"),
        ({"fields": {"a": "hashed", "b": "hashed"}}, "at most one field of an index can be 'hashed'"),
        ({"fields": {"a": "2d", "b": "2d"}}, "at most one field of an index can be '2d'"),
        ({"fields": {"a": 1, "b": "2d"}}, "must come first"),
        ({"fields": {"a": "text", "b": "2dsphere"}}, "cannot combine index types"),
        ({"fields": {"a": "hashed", "b": "2d"}}, "cannot combine index types"),
        ({"fields": {"$**": 1, "b": "text"}}, "cannot combine index types"),
        ({"fields": {"$**": 1, "a.$**": 1}}, "at most one wildcard"),
        ({"fields": {"a": "text", "b": 1, "c": "text"}}, "must be adjacent"),
        ({"fields": {"a.$**": "text"}}, "wildcard field"),
        ({"fields": {"a.$**": "hashed"}}, "wildcard field"),
        ({"fields": {"a": 1}, "weights": {"a": 2}}, "applies only to text"),
        ({"fields": {"a": 1}, "default_language": "english"}, "applies only to text"),
        ({"fields": {"a": 1}, "language_override": "lang"}, "applies only to text"),
        ({"fields": {"a": "text"}, "weights": {"b": 2}}, "not a 'text' field"),
        ({"fields": {"a": "text"}, "weights": {"a": 0}}, "weight of 'a'"),
        ({"fields": {"a": "text"}, "weights": {"a": 100000}}, "weight of 'a'"),
        ({"fields": {"a": "text"}, "weights": {"a": 1.5}}, "weight of 'a'"),
        ({"fields": {"a": 1}, "sparse": True, "partial_filter_expression": {"a": 1}}, "cannot be combined"),
        ({"fields": {"a": 1}, "partial_filter_expression": {}}, "must not be empty"),
        ({"fields": {"_id": 1}, "hidden": True}, "_id index cannot be hidden"),
        ({"fields": {"x": 1}, "name": "_id_", "hidden": True}, "_id index cannot be hidden"),
        ({"fields": {"a": 1}, "name": ""}, "name must not be empty"),
        ({"fields": {"a": 1}, "name": "*"}, "'*'"),
        ({"fields": {"a": 1}, "name": "a\0"}, "NUL"),
        ({"fields": {"a": 1}, "collation": {"strength": 2}}, "locale"),
        ({"fields": {"a": "text"}, "collation": {"locale": "en"}}, "simple collation"),
        ({"fields": {"a": "2d"}, "collation": {"locale": "en"}}, "simple collation"),
        ({"fields": {"a": 1}, "wildcard_projection": {"a": 1}}, "whole-document wildcard"),
        ({"fields": {"a.$**": 1}, "wildcard_projection": {"a": 1}}, "whole-document wildcard"),
        ({"fields": {"$**": 1}, "wildcard_projection": {}}, "must not be empty"),
        ({"fields": {"$**": 1}, "wildcard_projection": {"a": 1, "b": 0}}, "cannot mix"),
        ({"fields": {"a": 1}, "bits": 20}, "only to 2d"),
        ({"fields": {"a": 1}, "min": 0}, "only to 2d"),
        ({"fields": {"a": "2d"}, "bits": 0}, "bits must be at least 1"),
        ({"fields": {"a": "2d"}, "min": 5, "max": 5}, "lower than max"),
    ],
)
def test_index_rejects_what_mongodb_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=None) as info:
        Index(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": "a"}, "not a string"),
        ({"fields": 5}, "not int"),
        ({"fields": [("a", 1, 2)]}, "pair"),
        ({"fields": {1: 1}}, "field names must be strings"),
        ({"fields": {"a": True}}, "not a bool"),
        ({"fields": {"a": 1}, "name": 5}, "name must be a str"),
        ({"fields": {"a": 1}, "unique": 1}, "unique must be True, False or None"),
        ({"fields": {"a": 1}, "sparse": "yes"}, "sparse must be"),
        ({"fields": {"a": 1}, "hidden": 0}, "hidden must be"),
        ({"fields": {"a": 1}, "expire_after_seconds": 1.5}, "expire_after_seconds must be an int"),
        ({"fields": {"a": 1}, "expire_after_seconds": True}, "expire_after_seconds must be an int"),
        (
            {"fields": {"a": 1}, "partial_filter_expression": [1]},
            "partial_filter_expression must be a mapping",
        ),
        ({"fields": {"a": 1}, "collation": "en"}, "collation must be a mapping"),
        ({"fields": {"a": "text"}, "default_language": 1}, "default_language must be a str"),
        ({"fields": {"a": "2d"}, "min": "0"}, "min must be a number"),
    ],
)
def test_index_rejects_wrong_types(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as info:
        Index(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fields": {"a": 1}, "expire_after_seconds": 0},
        {"fields": {"a": -1}, "expire_after_seconds": 2**31 - 1},
        {"fields": {"a": "hashed", "b": 1}},
        {"fields": {"a": 1, "b": "hashed"}},
        {"fields": {"a": "2dsphere", "b": "2dsphere", "c": 1}},
        {"fields": {"a": 1, "t": "text", "u": "text", "z": 1}},
        {"fields": {"$**": "text"}, "weights": {"title": 10}},
        {"fields": {"$**": 1, "b": 1}},
        {"fields": {"a.$**": -1}, "partial_filter_expression": {"a": {"$exists": True}}},
        {"fields": {"$**": 1}, "wildcard_projection": {"_id": 1, "a": 0}},
        {"fields": {"a": 1}, "unique": True, "partial_filter_expression": {"a": {"$type": "string"}}},
        {"fields": {"a": 1}, "unique": True, "sparse": True},
        {"fields": {"a": 1}, "collation": {"locale": "fr", "strength": 1}},
        {"fields": {"_id": "hashed"}},
        {"fields": {"loc": "2d"}, "bits": 32, "min": -1.5, "max": 1.5},
    ],
)
def test_index_accepts_what_mongodb_accepts(kwargs: dict[str, Any]) -> None:
    Index(**kwargs)


# --------------------------------------------------------------------------------------------------
# Immutability
# --------------------------------------------------------------------------------------------------


def test_index_is_frozen_and_deep_frozen() -> None:
    source = {"a": {"$gt": [1, 2]}}
    index = Index({"a": 1}, partial_filter_expression=source)
    source["a"]["$gt"].append(3)  # the caller's dict is copied, not shared
    assert index.partial_filter_expression == {"a": {"$gt": (1, 2)}}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        index.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        index.fields["b"] = 1  # type: ignore[index]
    assert index.partial_filter_expression is not None
    with pytest.raises(TypeError):
        index.partial_filter_expression["a"]["x"] = 1


def test_frozen_map_behaves_like_a_read_only_dict() -> None:
    frozen = FrozenMap({"b": 1, "a": [1, {"c": 2}]})
    assert list(frozen) == ["b", "a"]
    assert frozen == {"a": (1, {"c": 2}), "b": 1}  # dict equality; lists are stored as tuples
    assert frozen["a"] == (1, FrozenMap({"c": 2}))
    assert frozen.to_dict() == {"b": 1, "a": [1, {"c": 2}]}
    assert hash(frozen) == hash(FrozenMap({"a": (1, {"c": 2}), "b": 1}))
    assert len(frozen) == 2
    assert "FrozenMap" in repr(frozen)
    assert frozen != 3
    assert thaw((1, FrozenMap({"x": (2,)}))) == [1, {"x": [2]}]


def test_document_is_deep_frozen_and_thaws_to_plain_dicts() -> None:
    data: dict[str, Any] = {"slug": "admin", "roles": ["read", "write"], "meta": {"level": 1}}
    document = Document({"slug": "admin"}, data)
    data["roles"].append("delete")
    assert document.data["roles"] == ("read", "write")
    with pytest.raises(TypeError):
        document.data["meta"]["level"] = 2
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        document.data = FrozenMap()  # type: ignore[misc]
    plain = document.to_mongo()
    assert plain == {"slug": "admin", "roles": ["read", "write"], "meta": {"level": 1}}
    plain["roles"].append("x")
    assert document.data["roles"] == ("read", "write")
    assert document.filter() == {"slug": "admin"}
    assert hash(document) == hash(Document({"slug": "admin"}, document.to_mongo()))


def test_collection_definition_is_frozen_and_converts_sequences() -> None:
    definition = CollectionDefinition(
        "c", indices=[Index({"a": 1})], default_docs=[Document({"k": 1}, {"k": 1})]
    )
    assert isinstance(definition.indices, tuple)
    assert isinstance(definition.default_docs, tuple)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        definition.name = "d"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# Document
# --------------------------------------------------------------------------------------------------


def test_document_unique_key_dotted_path() -> None:
    Document({"profile.email": "a@b"}, {"profile": {"email": "a@b"}, "n": 1})


@pytest.mark.parametrize(
    ("unique_key", "data", "error", "message"),
    [
        ({}, {"a": 1}, ConfigurationError, "at least one field"),
        ({"a": 1}, {"b": 1}, ConfigurationError, "'a' is missing from data"),
        ({"a": 1}, {"a": 2}, ConfigurationError, "'a' is 1 but data has 2"),
        ({"p.q": 1}, {"p": {"q": 2}}, ConfigurationError, "'p.q' is 1 but data has 2"),
        ({"p.q": 1}, {"p": 3}, ConfigurationError, "missing from data"),
        ({"$or": 1}, {"$or": 1}, ConfigurationError, "not a field name"),
        ([("a", 1)], {"a": 1}, TypeError, "unique_key must be a mapping"),
        ({"a": 1}, None, TypeError, "data must be a mapping"),
        ({1: 1}, {1: 1}, TypeError, "unique_key keys must be strings"),
    ],
)
def test_document_validation(unique_key: Any, data: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        Document(unique_key, data)
    assert message in str(info.value)


def test_document_id_is_deterministic_and_collection_scoped() -> None:
    document = Document({"slug": "a"}, {"slug": "a", "n": 1})
    same = Document({"slug": "a"}, {"slug": "a", "n": 2})
    assert document.document_id("c") == same.document_id("c")  # identity is the unique key, not the data
    assert isinstance(document.document_id("c"), bson.ObjectId)
    assert document.document_id("c") != document.document_id("d")
    assert document.document_id("c") != Document({"slug": "b"}, {"slug": "b"}).document_id("c")


def test_document_id_uses_data_id_when_given() -> None:
    assert Document({"k": 1}, {"_id": "fixed", "k": 1}).document_id("c") == "fixed"


# --------------------------------------------------------------------------------------------------
# TimeSeries and CollectionDefinition
# --------------------------------------------------------------------------------------------------


def test_timeseries_to_mongo() -> None:
    assert TimeSeries("t").to_mongo() == {"timeField": "t"}
    assert TimeSeries("t", "m", "minutes").to_mongo() == {
        "timeField": "t",
        "metaField": "m",
        "granularity": "minutes",
    }


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("",), ConfigurationError, "not a valid field name"),
        (("$t",), ConfigurationError, "not a valid field name"),
        (("_id",), ConfigurationError, "cannot be '_id'"),
        (("t", "t"), ConfigurationError, "must differ"),
        (("t", None, "days"), ConfigurationError, "granularity must be one of"),
        ((1,), TypeError, "time_field must be a str"),
        (("t", 2), TypeError, "meta_field must be a str"),
    ],
)
def test_timeseries_validation(args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        TimeSeries(*args)
    assert message in str(info.value)


def test_create_options_use_mongodb_names() -> None:
    capped = CollectionDefinition("log", capped=True, size=8192, max=100)
    assert capped.create_options() == {"capped": True, "size": 8192, "max": 100}
    series = CollectionDefinition(
        "metrics", timeseries=TimeSeries("ts", "sensor", "minutes"), expire_after_seconds=86400
    )
    assert series.create_options() == {
        "timeseries": {"timeField": "ts", "metaField": "sensor", "granularity": "minutes"},
        "expireAfterSeconds": 86400,
    }
    validated = CollectionDefinition(
        "people",
        validator={"$jsonSchema": {"required": ["name"]}},
        validation_level="moderate",
        validation_action="warn",
        collation={"locale": "en", "strength": 2},
    )
    assert validated.create_options() == {
        "validator": {"$jsonSchema": {"required": ["name"]}},
        "validationLevel": "moderate",
        "validationAction": "warn",
        "collation": {"locale": "en", "strength": 2},
    }
    assert CollectionDefinition("plain").create_options() == {}
    bson.encode(validated.create_options())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ConfigurationError, "must not be empty"),
        ({"name": "a$b"}, ConfigurationError, "'$'"),
        ({"name": "a\0b"}, ConfigurationError, "NUL"),
        ({"name": "system.users"}, ConfigurationError, "system."),
        ({"name": ".a"}, ConfigurationError, "start or end with '.'"),
        ({"name": 5}, TypeError, "name must be a str"),
        ({"name": "c", "capped": True}, ConfigurationError, "size is required"),
        ({"name": "c", "size": 100}, ConfigurationError, "only to capped"),
        ({"name": "c", "max": 100}, ConfigurationError, "only to capped"),
        ({"name": "c", "capped": True, "size": 0}, ConfigurationError, "size must be at least 1"),
        ({"name": "c", "capped": "yes", "size": 1}, TypeError, "capped must be a bool"),
        (
            {"name": "c", "capped": True, "size": 4096, "timeseries": TimeSeries("t")},
            ConfigurationError,
            "cannot be combined",
        ),
        ({"name": "c", "timeseries": {"timeField": "t"}}, TypeError, "timeseries must be a TimeSeries"),
        ({"name": "c", "expire_after_seconds": 10}, ConfigurationError, "only to time series"),
        ({"name": "c", "validation_level": "lax"}, ConfigurationError, "validation_level must be one of"),
        ({"name": "c", "validation_action": "block"}, ConfigurationError, "validation_action must be one of"),
        ({"name": "c", "validation_level": 1}, TypeError, "validation_level must be a str"),
        ({"name": "c", "validator": [1]}, TypeError, "validator must be a mapping"),
        ({"name": "c", "collation": {"strength": 1}}, ConfigurationError, "locale"),
        ({"name": "c", "indices": Index({"a": 1})}, TypeError, "indices must be a sequence"),
        ({"name": "c", "indices": [{"a": 1}]}, TypeError, "indices must contain only Index"),
        ({"name": "c", "default_docs": [{"a": 1}]}, TypeError, "default_docs must contain only Document"),
        (
            {"name": "c", "indices": [Index({"a": 1}), Index({"a": 1}, unique=True, name="other")]},
            ConfigurationError,
            "same key pattern",
        ),
        (
            {"name": "c", "indices": [Index({"a": 1}, name="x"), Index({"b": 1}, name="x")]},
            ConfigurationError,
            "two indexes are named 'x'",
        ),
        (
            {"name": "c", "indices": [Index({"a": "text"}), Index({"b": "text"})]},
            ConfigurationError,
            "only one text index",
        ),
        ({"name": "c", "indices": [Index({"_id": 1})]}, ConfigurationError, "duplicates the _id index"),
        (
            {
                "name": "c",
                "default_docs": [Document({"k": 1}, {"k": 1}), Document({"k": 1}, {"k": 1, "x": 2})],
            },
            ConfigurationError,
            "have the unique key",
        ),
        (
            {
                "name": "c",
                "default_docs": [
                    Document({"k": 1}, {"_id": 7, "k": 1}),
                    Document({"k": 2}, {"_id": 7, "k": 2}),
                ],
            },
            ConfigurationError,
            "same _id",
        ),
    ],
)
def test_collection_definition_validation(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        CollectionDefinition(**kwargs)
    assert message in str(info.value)


def test_same_key_with_other_direction_is_a_different_index() -> None:
    CollectionDefinition("c", indices=[Index({"a": 1}), Index({"a": -1})])


def test_text_and_2d_indexes_accept_an_explicit_simple_collation() -> None:
    text = Index({"body": "text"}, collation={"locale": "simple"})
    geo = Index({"loc": "2d"}, collation={"locale": "simple"})
    assert CollectionDefinition("c", indices=[text, geo], collation={"locale": "en"}).indices == (text, geo)
    with pytest.raises(ConfigurationError, match="only the simple collation"):
        Index({"body": "text"}, collation={"locale": "en"})


def test_same_key_pattern_twice_with_other_collation_or_partial_filter_is_valid() -> None:
    plain = Index({"a": 1})
    french = Index({"a": 1}, name="a_fr", collation={"locale": "fr"})
    partial = Index({"a": 1}, name="a_recent", partial_filter_expression={"recent": True})
    assert len(CollectionDefinition("c", indices=[plain, french, partial]).indices) == 3
    with pytest.raises(ConfigurationError, match="same key pattern"):
        CollectionDefinition("c", indices=[plain, Index({"a": 1}, name="again", unique=True)])


def test_validation_action_error_and_log_is_accepted() -> None:
    definition = CollectionDefinition(
        "c", validator={"a": {"$exists": True}}, validation_action="errorAndLog"
    )
    assert definition.create_options()["validationAction"] == "errorAndLog"


def test_time_series_refuses_unique_indexes_and_default_documents_up_front() -> None:
    series = TimeSeries("t", meta_field="m")
    with pytest.raises(ConfigurationError, match="cannot have unique indexes"):
        CollectionDefinition("s", timeseries=series, indices=[Index({"m": 1}, unique=True)])
    with pytest.raises(ConfigurationError, match="cannot hold default documents"):
        CollectionDefinition("s", timeseries=series, default_docs=[Document({"m": 1}, {"m": 1, "t": 0})])


def test_unique_key_embedded_document_order_must_match_data() -> None:
    with pytest.raises(ConfigurationError, match="another order"):
        Document({"owner": {"b": 2, "a": 1}}, {"owner": {"a": 1, "b": 2}})
    assert Document({"owner": {"a": 1, "b": 2}}, {"owner": {"a": 1, "b": 2}}).filter() == {
        "owner": {"a": 1, "b": 2}
    }


def test_mongomancy_0_1_sort_constants_are_pymongo_s() -> None:
    import pymongo  # noqa: PLC0415

    import mongomancy  # noqa: PLC0415

    assert (mongomancy.ASCENDING, mongomancy.DESCENDING) == (pymongo.ASCENDING, pymongo.DESCENDING)
    assert "ASCENDING" not in mongomancy.__all__  # kept for old code, not part of the API
