"""The layering of DESIGN §2, as the import-linter contracts in pyproject.toml state it."""

from pathlib import Path

import pytest

import neurossm

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch, capsys):
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extra")
    # grimp finds the package through sys.path: analyse the checkout these tests import.
    monkeypatch.syspath_prepend(str(Path(neurossm.__file__).resolve().parents[1]))
    code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out
