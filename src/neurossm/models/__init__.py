"""Registered models; see :mod:`neurossm.models.registry`."""

from .registry import ModelSpec, get_model, list_models, register_model

__all__ = ["ModelSpec", "get_model", "list_models", "register_model"]
