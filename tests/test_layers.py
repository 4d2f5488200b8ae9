"""The package's layering (docs/architecture.md), as the import-linter contracts in pyproject.toml
state it."""

from pathlib import Path

import neurossm

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch, capsys):
    # import-linter is in the test extra; without it this test fails rather than skips, so that a
    # CI job that lost the extra cannot pass without checking the layers
    try:
        from importlinter import cli
    except ImportError as exc:  # pragma: no cover - only where the test extra is missing
        raise AssertionError("import-linter is not installed; install the test extra: "
                             "pip install -e '.[test]'") from exc
    # grimp finds the package through sys.path: analyse the checkout these tests import.
    monkeypatch.syspath_prepend(str(Path(neurossm.__file__).resolve().parents[1]))
    code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out
