"""The attribution contract: what a model implements to be explained by CPA.

A model is explainable when it splits its forward pass into pathways (docs/cpa.md): each pathway
reads its own input, encodes it to one vector, and a fusion + head turns the vectors into logits,
with any pathway ablatable *before fusion*. CPA differentiates the target logit with respect to
each pathway's input and re-runs only :meth:`PathwayModel.classify` for each ablation.

The check is structural (a :class:`typing.Protocol`): a model does not import this module, it
only has these members; ``tests/models/test_contract.py`` checks every registered model against
it, and ``--analysis`` / ``neurossm explain`` refuse a model without them.
"""

from __future__ import annotations

import inspect
from typing import Protocol, Sequence, runtime_checkable

import torch

from ..errors import ConfigError

MEMBERS = ("pathway_names", "pathway_inputs", "pathway_vectors", "classify")


@runtime_checkable
class PathwayModel(Protocol):
    """A classifier whose pathways CPA can localise and ablate."""

    @property
    def pathway_names(self) -> Sequence[str]:
        """One name per pathway, in the order of every ``P`` axis below."""
        ...

    def pathway_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` ``(B, R, T)`` → each pathway's own input ``(B, R, T_p)`` (gradients are taken here)."""
        ...

    def pathway_vectors(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """The pathway inputs → one vector per pathway, ``(B, P, d)``.

        Optionally also a keyword ``roi_statistics``: a list that receives, per pathway, ROI-level
        statistics ``(B, R, k)`` that the pathway's encoder computed from each ROI alone, as
        leaves of the graph (or ``None``); CPA then attributes through them (:mod:`.cpa`).
        """
        ...

    def classify(self, vectors: torch.Tensor, pathway_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, P, d)`` → logits ``(B, C)``; ``pathway_mask`` ``(P,)`` of 0/1 ablates before fusion."""
        ...


def reports_roi_statistics(model: object) -> bool:
    """Whether ``model.pathway_vectors`` takes the optional ``roi_statistics`` keyword."""
    return "roi_statistics" in inspect.signature(model.pathway_vectors).parameters


def is_explainable(model_cls: type) -> bool:
    """Whether instances of ``model_cls`` implement :class:`PathwayModel` (checked on the class,
    before any model is built)."""
    return all(callable(getattr(model_cls, m, None)) for m in MEMBERS[1:]) and hasattr(model_cls, MEMBERS[0])


def check_explainable(model: object, name: str) -> None:
    """Raise a :class:`ConfigError` naming ``name`` unless ``model`` (an instance or a class) is explainable."""
    ok = is_explainable(model) if isinstance(model, type) else isinstance(model, PathwayModel)
    if not ok:
        raise ConfigError(f"model {name} has no pathways that CPA can ablate (it lacks "
                          f"{', '.join(m for m in MEMBERS if not hasattr(model, m))}); "
                          "CPA (--analysis, `neurossm explain`) explains NeuroSSM")
