"""The package as a user meets it: its version everywhere, its licence and citation, a light import."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import neurossm
from neurossm import cli

ROOT = Path(__file__).resolve().parents[1]


def test_neurossm_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"neurossm {neurossm.__version__}"
    assert importlib.metadata.version("neurossm") == neurossm.__version__


def test_the_changelog_and_the_citation_name_this_version():
    assert re.search(rf"^## {re.escape(neurossm.__version__)}\b", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert str(citation["version"]) == neurossm.__version__
    (paper,) = citation["references"]
    assert "NeuroSSM" in paper["title"] and paper["year"] == 2026
    assert [a["family-names"] for a in paper["authors"]] == ["Genç", "Macun", "Özaslan", "Saritas", "Çukur"]
    assert any(i["value"] == "arXiv:2601.01229" for i in paper["identifiers"])


def test_the_licence_file_is_the_one_the_package_declares():
    meta = importlib.metadata.metadata("neurossm")
    declared = meta.get("License-Expression") or meta.get("License")
    assert declared == "MIT" == yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))["license"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_import_neurossm_loads_neither_torch_nor_scikit_learn():
    code = "import sys, neurossm; neurossm.__version__; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
