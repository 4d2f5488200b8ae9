"""Which Neurosynth terms describe each class: the dataset's registered terms, or a user file.

Terms are Neurosynth v7 abstract vocabulary entries (``"working memory"``, ``"theory mind"``:
Neurosynth drops stop words, so "theory of mind" is ``"theory mind"``). They are matched to
NiMARE annotation columns such as ``terms_abstract_tfidf__working memory``, case-insensitively.
A class mapped to no term (PPMI's controls: no meta-analytic map describes "healthy") is
reported and skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError, DataNotFoundError


def default_terms(dataset: str) -> dict[str, list[str]]:
    """The terms a dataset registered for its classes (:class:`~neurossm.data.registry.DatasetSpec`);
    none for a dataset that is not registered (a folder name under ``--root``)."""
    from ..data.registry import get_dataset, list_datasets

    if dataset.upper() not in list_datasets():
        return {}
    return dict(get_dataset(dataset).terms)


def _as_term_list(value, source: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise ConfigError(f"{source}: class {key!r} maps to {value!r}; expected a term or a list of terms")


def load_terms_file(path: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """Read ``--terms FILE`` (JSON or YAML).

    Either ``{class: [terms]}`` (used for every dataset) or ``{dataset: {class: [terms]}}``.
    Returned as ``{dataset or "*": {CLASS: [terms]}}`` with upper-case keys.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"{path}: --terms file not found; expected JSON or YAML mapping class -> terms")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ConfigError(f"{path}: cannot parse ({exc}); expected JSON or YAML mapping class -> list of terms") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping class -> list of terms, e.g. {{\"WM\": [\"working memory\"]}}")
    if all(isinstance(v, dict) for v in data.values()):
        return {str(ds).upper(): {str(c).upper(): _as_term_list(t, str(path), str(c)) for c, t in m.items()}
                for ds, m in data.items()}
    return {"*": {str(c).upper(): _as_term_list(t, str(path), str(c)) for c, t in data.items()}}


def terms_for(dataset: str, class_name: str,
              overrides: dict[str, dict[str, list[str]]] | None = None) -> list[str] | None:
    """Terms of ``class_name`` in ``dataset``; ``None`` when nothing maps the class.

    A ``--terms`` file wins over the defaults (its dataset section, then its ``"*"`` section).
    An empty list means "mapped on purpose to no term" (a control group).
    """
    ds, cls = dataset.upper(), class_name.strip().upper()
    for table in ((overrides or {}).get(ds), (overrides or {}).get("*"), default_terms(ds)):
        if table and cls in table:
            return list(table[cls])
    return None
