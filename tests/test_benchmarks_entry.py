"""``python -m benchmarks`` knows every benchmark script, and benchmarks/README.md documents each."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _entry_point():
    spec = importlib.util.spec_from_file_location("benchmarks_entry", BENCH / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines SCRIPTS and main; runs nothing under __name__ guard
    return module


def test_every_script_has_a_name_and_a_readme_row():
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("__")}
    entry = _entry_point()
    assert set(entry.SCRIPTS) == scripts
    readme = (BENCH / "README.md").read_text()
    assert all(f"| `{name}` |" in readme for name in scripts)


def test_unknown_name_is_refused_with_the_list(capsys):
    assert _entry_point().main(["no_such_benchmark"]) == 2
    assert "signal_kinds" in capsys.readouterr().err
