"""The README's promises: its examples run as written, and CI runs the test command it gives."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _python_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python example after {heading!r}"
    return match.group(1)


@pytest.mark.parametrize("heading", ["## Usage", "## Testing your own program against a failover"])
def test_readme_example_runs_as_written(heading, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_python_block_after(heading), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if heading == "## Usage":
        assert "['Zork']" in result.stdout
        assert "'score': 10" in result.stdout  # the $inc across the election landed exactly once


def test_ci_runs_the_readme_test_command():
    command = re.search(r"Run the tests.*?```shell\n(.*?)\n```", README, re.S)
    assert command, "the README gives no test command"
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command.group(1).strip() in ci_script.splitlines()
