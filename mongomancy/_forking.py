"""Fresh locks in a forked child: every lock the library owns is re-created after ``fork()``.

Why: ``fork()`` copies a lock in whatever state it had, and the thread that held it does not exist in the
child, so a lock held at that moment can never be released there (POSIX ``fork``: only the calling thread
survives).  Each owner registers its lock attributes once; in the child, before any code of the program
runs again, every registered attribute gets a new object from its factory.  Owners are held weakly: an
object that is gone needs nothing renewed.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable

_REGISTRY: dict[int, tuple[weakref.ref[object], str, Callable[[], object]]] = {}
_KEYS = itertools.count(1)


def renew_after_fork(owner: object, attribute: str, factory: Callable[[], object] = threading.Lock) -> None:
    """In a forked child, set ``owner.<attribute> = factory()`` (a fresh, unheld lock)."""
    key = next(_KEYS)  # next() on a count is atomic under the GIL

    def forget(_ref: weakref.ref[object], key: int = key) -> None:
        _REGISTRY.pop(key, None)

    _REGISTRY[key] = (weakref.ref(owner, forget), attribute, factory)


def registered() -> int:
    """How many renewals are registered (for tests: dead owners leave no entry)."""
    return len(_REGISTRY)


def _renew_in_child() -> None:
    for ref, attribute, factory in list(_REGISTRY.values()):
        owner = ref()
        if owner is not None:
            setattr(owner, attribute, factory())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)
