"""Deprecated alias of :mod:`mongomancy.schema.definitions`, kept for one release; every name re-exported."""

from __future__ import annotations

from mongomancy.schema.definitions import (
    INDEX_DIRECTIONS,
    CollectionDefinition,
    Direction,
    Document,
    FrozenMap,
    Index,
    TimeSeries,
    check_collection_name,
    default_index_name,
    freeze,
    thaw,
)

__all__ = [
    "INDEX_DIRECTIONS",
    "CollectionDefinition",
    "Direction",
    "Document",
    "FrozenMap",
    "Index",
    "TimeSeries",
    "check_collection_name",
    "default_index_name",
    "freeze",
    "thaw",
]
