"""``neurossm models``: the registered models (``--verbose``: their options and presets too)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "--verbose also shows each model's options and presets"


def run(args: argparse.Namespace) -> int:
    from ..models.registry import get_model, list_models

    for name in list_models():
        spec = get_model(name)
        print(f"{spec.name:<12} {spec.description}")
        if args.verbose:
            if spec.reference:
                print(f"{'':<12} reference: {spec.reference}")
            for k, v in spec.defaults().items():
                print(f"{'':<12}   {k} = {v!r}")
            for k, v in spec.presets.items():
                print(f"{'':<12}   preset {k}: {v}")
    if args.verbose:
        from ..data.registry import describe_training_defaults

        print("\ntraining defaults of the gradient-trained models, per dataset (--epochs, --lr, "
              "--batch-size, --weight-decay, --patience override them):")
        for line in describe_training_defaults():
            print(f"  {line}")
    return 0
