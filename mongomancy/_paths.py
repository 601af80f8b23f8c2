"""Reading a value at a dotted path of a document (``"a.b"`` is field ``b`` of sub-document ``a``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: What ``lookup_dotted`` returns when the path does not exist (``None`` is a real value).
MISSING: Final = object()


def lookup_dotted(document: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` in ``document``, following sub-documents, or ``MISSING``."""
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value
