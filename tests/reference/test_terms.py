import json

import pytest

from neurossm.errors import ConfigError
from neurossm.reference.terms import load_terms_file, terms_for


def test_defaults_cover_hcp_task_and_ppmi():
    for task in ("EMOTION", "GAMBLING", "LANGUAGE", "MOTOR", "RELATIONAL", "SOCIAL", "WM"):
        assert terms_for("HCP_TASK", task)
    assert terms_for("HCP_TASK", "wm") == ["working memory"]
    assert terms_for("PPMI", "PD") == ["parkinson"]
    assert terms_for("PPMI", "Control") == []
    assert terms_for("CUSTOM", "anything") is None


def test_terms_file_json_yaml_and_nested(tmp_path):
    flat = tmp_path / "t.json"
    flat.write_text(json.dumps({"wm": "n-back", "x": ["a", "b"]}))
    table = load_terms_file(flat)
    assert terms_for("HCP_TASK", "WM", table) == ["n-back"]  # the file wins over the defaults
    assert terms_for("OTHER", "x", table) == ["a", "b"]
    nested = tmp_path / "t.yaml"
    nested.write_text("PPMI:\n  Control: [healthy]\n")
    assert terms_for("PPMI", "control", load_terms_file(nested)) == ["healthy"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: 3\n")
    with pytest.raises(ConfigError, match="expected a term or a list"):
        load_terms_file(bad)
