"""The Python examples of the docs run as written: docs/python-api.md as one notebook, and the README's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["docs/python-api.md", "README.md"])
def test_the_python_examples_run_in_order(page, tmp_path, monkeypatch):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no python example"
    monkeypatch.chdir(tmp_path)  # the examples write model files into the working directory
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page} (python block {i + 1})", "exec"), namespace)
