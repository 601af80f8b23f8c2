"""What the benchmark scripts share.  They import it as ``from _common import ...``: run as
``python benchmarks/bench_x.py``, a script has its own folder first on ``sys.path``."""

from __future__ import annotations


def markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A markdown table: the header row, the separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
