"""Quick check of ROI-wise read-out recipes, outside the harness (issue 12's design work).

Not the suite (``signal_kinds.py`` is): a small training loop (AdamW at a constant rate, batch
16, checkpoint by validation balanced accuracy, ties to the lower validation loss, early stopping)
over the harness' own subject-grouped folds (:func:`neurossm.data.splits.make_splits`), test fold
touched once, so that read-out designs can be compared in minutes. The encoder is a per-ROI
Mamba (``--enc roi``), a per-time-step one (``--enc time``) or their sum (``--enc both``);
``--ident`` replaces the per-ROI encoder by the identity (the pooled statistics of the pathway's
own signal: what a perfect-but-fixed feature extractor gives the read-out); ``--resid K`` adds
K zero-initialised corrections to each ROI's series (the design NeuroSSM's ``roi`` encoder
took); ``--skip`` concatenates the input's own statistics to the learned ones. Prints one line
per (kind, data seed): mean test accuracy over the 5 folds, selected epochs, wall time.

Example (the design NeuroSSM adopted, one pathway)::

    python benchmarks/roi_encoder_check.py --kinds events --seeds 0 1 --forms diff --pool moments \
        --mixer score --drop 0.3 --wd 0.5 --lr 3e-3 --epochs 60 --patience 15 --resid 2 --patch 4
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurossm.data.splits import make_splits
from neurossm.models.neurossm import pathway_signal
from neurossm.ssm.mamba import BiMamba

# signal_kinds.py is a sibling script, not part of the package
sys.path.insert(0, str(Path(__file__).resolve().parent))
from signal_kinds import KINDS, make_kind  # noqa: E402

#: Features per channel that each pooling over time gives.
POOL_WIDTHS = {"abs_mean": 1, "energy": 1, "energy_max": 2, "mean": 1, "moments": 2}
MIXERS = ("linear", "score", "score_k", "attention")
ENCODERS = ("roi", "time", "both")
N_FOLDS = 5
VAL_FRACTION = 0.2
BATCH_SIZE = 16
GRAD_CLIP = 1.0
#: The :class:`RoiEncoder` arguments that a :class:`TimeEncoder` takes too.
SHARED_ENCODER_ARGS = ("d_model", "pool", "drop_prob", "n_layers")


def pool_over_time(h: torch.Tensor, pool: str) -> torch.Tensor:
    """Summarise a sequence over its time axis (dim 1).

    Parameters
    ----------
    h : torch.Tensor
        ``(B, T, ..., C)``.
    pool : str
        One of :data:`POOL_WIDTHS`: ``"abs_mean"``, ``"energy"`` (log mean square),
        ``"energy_max"`` (log mean square and log max magnitude), ``"mean"``, ``"moments"``
        (log mean square and log kurtosis).

    Returns
    -------
    torch.Tensor
        ``(B, ..., C * POOL_WIDTHS[pool])``.
    """
    if pool == "abs_mean":
        return h.abs().mean(1)
    if pool == "energy":
        return torch.log(h.pow(2).mean(1) + 1e-4)
    if pool == "energy_max":
        return torch.cat([torch.log(h.pow(2).mean(1) + 1e-4), torch.log(h.abs().amax(1) + 1e-4)], -1)
    if pool == "mean":
        return h.mean(1)
    if pool == "moments":
        energy = h.pow(2).mean(1) + 1e-4
        fourth = h.pow(4).mean(1) + 1e-8
        return torch.cat([torch.log(energy), torch.log(fourth) - 2 * torch.log(energy)], -1)
    raise ValueError(f"pool={pool!r}: expected one of {sorted(POOL_WIDTHS)}")


class RoiEncoder(nn.Module):
    """Per-ROI encoder and ROI-wise read-out of one pathway.

    Each ROI's series goes through the same patch stem and bidirectional Mamba blocks (weights
    shared over ROIs); the result is pooled over time, standardised across ROIs and mixed into
    one ``d_model`` vector.

    Parameters
    ----------
    n_rois : int
        Number of ROIs ``R``.
    d_model : int
        Width of the pathway's output.
    n_filters : int
        Channels per ROI of the stem and the Mamba blocks (``--F``).
    patch : int
        Stride of the stem: the blocks run at ``T // patch`` steps.
    pool : str
        Pooling over time, see :func:`pool_over_time`.
    mixer : str
        ``"linear"`` (all ROIs' features into one linear map), ``"score"`` (one score per ROI,
        then a linear map), ``"score_k"`` (four scores per ROI) or ``"attention"`` (softmax over
        ROIs of a score plus a learned per-ROI prior, weighting per-ROI values).
    n_layers : int
        Number of residual BiMamba blocks.
    drop_prob : float
        Dropout on the standardised per-ROI features.
    stem_k : int
        Stem kernel in patches; above 1 the kernel spans ``stem_k`` patches, padded so that it
        is centred.
    identity : bool
        Skip the learned encoder and read out the pathway's own signal (``--ident``).
    n_resid : int
        If above 0, read out the signal plus ``n_resid`` zero-initialised learned corrections
        instead of the encoder's channels (``--resid``).
    skip : bool
        Concatenate the input's own pooled statistics to the learned ones (``--skip``; ignored
        with ``identity`` or ``n_resid``).

    Notes
    -----
    The stem and blocks are built even with ``identity=True`` so that, under one seed, every
    variant starts from the same random draws for the parameters they share.
    """

    def __init__(self, n_rois: int, d_model: int = 32, n_filters: int = 4, patch: int = 2,
                 pool: str = "energy", mixer: str = "score", n_layers: int = 1,
                 drop_prob: float = 0.1, stem_k: int = 1, identity: bool = False,
                 n_resid: int = 0, skip: bool = False) -> None:
        super().__init__()
        if pool not in POOL_WIDTHS:
            raise ValueError(f"pool={pool!r}: expected one of {sorted(POOL_WIDTHS)}")
        if mixer not in MIXERS:
            raise ValueError(f"mixer={mixer!r}: expected one of {MIXERS}")
        if identity and n_resid:
            raise ValueError("identity=True with n_resid > 0: the corrections are computed from "
                             f"the encoder's {n_filters} channels, which --ident removes")
        self.patch = patch
        self.pool = pool
        self.mixer = mixer
        self.identity = identity
        self.n_resid = n_resid
        self.skip = skip
        self.stem_k = stem_k
        self.stem = nn.Conv1d(1, n_filters, kernel_size=stem_k * patch if stem_k > 1 else patch,
                              stride=patch, padding=0)
        self.blocks = nn.ModuleList(BiMamba(n_filters, d_state=4, d_conv=4, expand=2)
                                    for _ in range(n_layers))
        self.drop = nn.Dropout(drop_prob)
        if n_resid:
            n_channels = n_resid
            self.res_out = nn.Linear(n_filters, n_resid)
            # corrections start at zero: training begins from the identity read-out
            nn.init.zeros_(self.res_out.weight)
            nn.init.zeros_(self.res_out.bias)
        elif identity:
            n_channels = 1
        else:
            n_channels = n_filters + (1 if skip else 0)
        n_features = n_channels * POOL_WIDTHS[pool]
        if mixer == "linear":
            self.mix = nn.Linear(n_rois * n_features, d_model)
        elif mixer == "score":
            self.score = nn.Linear(n_features, 1)
            self.mix = nn.Linear(n_rois, d_model)
        elif mixer == "score_k":
            self.score = nn.Linear(n_features, 4)
            self.mix = nn.Linear(n_rois * 4, d_model)
        else:
            self.score = nn.Linear(n_features, 1)
            self.prior = nn.Parameter(torch.zeros(n_rois))
            self.value = nn.Linear(n_features, d_model)
            self.roi_value = nn.Parameter(torch.zeros(n_rois, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a pathway signal ``(B, R, T)`` to ``(B, d_model)``."""
        if self.identity:
            h = rearrange(x, "b r t -> b t r 1")  # (B, T, R, 1)
        else:
            h = self._encode(x)  # (B, T', R, F), T' = T // patch
        if self.n_resid:
            series = rearrange(x, "b r t -> b t r 1")  # (B, T, R, 1)
            correction = self.res_out(h)  # (B, T', R, K)
            if self.patch > 1:
                correction = correction.repeat_interleave(self.patch, dim=1)  # (B, T' * patch, R, K)
                n_missing = series.shape[1] - correction.shape[1]
                correction = F.pad(correction, (0, 0, 0, 0, 0, n_missing))  # (B, T, R, K)
            return self._readout(series + correction)  # series + correction: (B, T, R, K)
        if self.skip and not self.identity:
            return self._readout(h, rearrange(x, "b r t -> b t r 1"))
        return self._readout(h)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and Mamba blocks, weights shared over ROIs: ``(B, R, T)`` to ``(B, T', R, F)``."""
        batch = x.shape[0]
        h = rearrange(x, "b r t -> (b r) 1 t")  # (B*R, 1, T)
        if self.stem_k > 1:
            n_pad = (self.stem_k - 1) * self.patch
            h = F.pad(h, (n_pad // 2, n_pad - n_pad // 2))  # (B*R, 1, T + n_pad)
        h = self.stem(h)  # (B*R, F, T')
        h = rearrange(h, "(b r) f t -> b t r f", b=batch)  # (B, T', R, F)
        for block in self.blocks:
            h = h + block(h)
        return h

    def _readout(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Pool ``h`` (and ``x`` in front, if given) over time and mix: ``(B, d_model)``."""
        features = pool_over_time(h, self.pool)  # (B, R, C * w)
        if x is not None:
            features = torch.cat([pool_over_time(x, self.pool), features], -1)  # (B, R, (C + 1) * w)
        return self._mix(features)

    def _mix(self, features: torch.Tensor) -> torch.Tensor:
        """Standardise ``(B, R, n_features)`` across ROIs, then mix to ``(B, d_model)``."""
        features = ((features - features.mean(1, keepdim=True))
                    * torch.rsqrt(features.var(1, keepdim=True, unbiased=False) + 1e-5))
        features = self.drop(features)
        if self.mixer == "linear":
            return self.mix(features.flatten(1))  # (B, d_model)
        if self.mixer == "score":
            return self.mix(self.score(features).squeeze(-1))  # (B, d_model)
        if self.mixer == "score_k":
            return self.mix(self.score(features).flatten(1))  # (B, d_model)
        weights = torch.softmax(self.score(features).squeeze(-1) + self.prior, 1)  # (B, R)
        return torch.einsum("br,brd->bd", weights, self.value(features) + self.roi_value)  # (B, d_model)


class TimeEncoder(nn.Module):
    """Per-time-step encoder of one pathway: all ROIs of a time step embedded together.

    Parameters
    ----------
    n_rois : int
        Number of ROIs ``R``.
    d_model : int
        Width of the pathway's output.
    pool : str
        Pooling over time; ``"mean"`` averages the layer-normalised sequence, any other is
        :func:`pool_over_time`.
    drop_prob : float
        Dropout on each block's output and on the pooled vector.
    n_layers : int
        Number of pre-norm residual BiMamba blocks.
    d_time : int
        Width of the time-step embedding (``--te_d``).
    """

    def __init__(self, n_rois: int, d_model: int = 32, pool: str = "energy",
                 drop_prob: float = 0.1, n_layers: int = 1, d_time: int = 16) -> None:
        super().__init__()
        if pool not in POOL_WIDTHS:
            raise ValueError(f"pool={pool!r}: expected one of {sorted(POOL_WIDTHS)}")
        self.embed = nn.Linear(n_rois, d_time)
        self.norms = nn.ModuleList(nn.LayerNorm(d_time) for _ in range(n_layers))
        self.blocks = nn.ModuleList(BiMamba(d_time, d_state=16, d_conv=4, expand=2)
                                    for _ in range(n_layers))
        self.pool = pool
        self.out = nn.Linear(d_time * POOL_WIDTHS[pool], d_model)
        self.drop = nn.Dropout(drop_prob)
        self.norm = nn.LayerNorm(d_time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a pathway signal ``(B, R, T)`` to ``(B, d_model)``."""
        h = self.embed(rearrange(x, "b r t -> b t r"))  # (B, T, d_time)
        for norm, block in zip(self.norms, self.blocks):
            h = h + self.drop(block(norm(h)))
        if self.pool == "mean":
            pooled = self.norm(h).mean(1)  # (B, d_time)
        else:
            pooled = pool_over_time(h, self.pool)  # (B, d_time * w)
        return self.out(self.drop(pooled))  # (B, d_model)


class RoiTimeEncoder(nn.Module):
    """Sum of a :class:`RoiEncoder` and a :class:`TimeEncoder` on the same pathway (``--enc both``).

    Parameters
    ----------
    n_rois : int
        Number of ROIs ``R``.
    d_time : int
        Width of the :class:`TimeEncoder`'s embedding.
    **roi_kwargs
        Every other argument of :class:`RoiEncoder`; the shared ones (``d_model``, ``pool``,
        ``drop_prob``, ``n_layers``) go to the :class:`TimeEncoder` too.
    """

    def __init__(self, n_rois: int, d_time: int = 16, **roi_kwargs) -> None:
        super().__init__()
        self.roi = RoiEncoder(n_rois, **roi_kwargs)
        shared = {key: roi_kwargs[key] for key in SHARED_ENCODER_ARGS if key in roi_kwargs}
        self.time = TimeEncoder(n_rois, d_time=d_time, **shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a pathway signal ``(B, R, T)`` to ``(B, d_model)``."""
        return self.roi(x) + self.time(x)


class ReadoutClassifier(nn.Module):
    """Multi-pathway classifier: one encoder per pathway, a softmax gate over pathways, a head.

    Parameters
    ----------
    n_rois : int
        Number of ROIs ``R``.
    n_outputs : int
        Number of classes.
    pathways : list of (str, int)
        ``(form, scale)`` of each pathway, see :func:`neurossm.models.neurossm.pathway_signal`.
    encoder : str
        ``"roi"`` (:class:`RoiEncoder`), ``"time"`` (:class:`TimeEncoder`) or ``"both"``
        (:class:`RoiTimeEncoder`).
    d_model : int
        Width of each pathway's output and of the head.
    drop_prob : float
        Dropout in the encoders and before the head's linear layer.
    d_time : int
        Width of the :class:`TimeEncoder`'s embedding (unused with ``encoder="roi"``).
    **roi_kwargs
        The other arguments of :class:`RoiEncoder` (``pool`` and ``n_layers`` also reach the
        :class:`TimeEncoder`).
    """

    def __init__(self, n_rois: int, n_outputs: int, pathways: list[tuple[str, int]],
                 encoder: str = "roi", d_model: int = 32, drop_prob: float = 0.1,
                 d_time: int = 16, **roi_kwargs) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r}: expected one of {ENCODERS}")
        self.pathways = pathways
        roi_kwargs = dict(roi_kwargs, d_model=d_model, drop_prob=drop_prob)
        if encoder == "roi":
            make_encoder = functools.partial(RoiEncoder, n_rois, **roi_kwargs)
        elif encoder == "time":
            shared = {key: roi_kwargs[key] for key in SHARED_ENCODER_ARGS if key in roi_kwargs}
            make_encoder = functools.partial(TimeEncoder, n_rois, d_time=d_time, **shared)
        else:
            make_encoder = functools.partial(RoiTimeEncoder, n_rois, d_time=d_time, **roi_kwargs)
        self.encoders = nn.ModuleList(make_encoder() for _ in pathways)
        self.gate = nn.Linear(d_model, 1)
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Dropout(drop_prob), nn.Linear(d_model, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map scans ``(B, R, T)`` to class logits ``(B, n_outputs)``."""
        per_pathway = torch.stack([encoder(pathway_signal(x, form, scale))
                                   for encoder, (form, scale) in zip(self.encoders, self.pathways)],
                                  1)  # (B, P, d_model)
        weights = torch.softmax(self.gate(per_pathway), 1)  # (B, P, 1)
        return self.head((weights * per_pathway).sum(1))  # (B, n_outputs)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of each class' recall."""
    return np.mean([np.mean(y_pred[y_true == label] == label) for label in np.unique(y_true)])


def build_model(args: argparse.Namespace, n_rois: int, n_classes: int,
                pathways: list[tuple[str, int]]) -> ReadoutClassifier:
    """The classifier that the command-line options describe."""
    return ReadoutClassifier(
        n_rois, n_classes, pathways, encoder=args.enc, d_model=args.d, drop_prob=args.drop,
        d_time=args.te_d, n_filters=args.F, patch=args.patch, pool=args.pool, mixer=args.mixer,
        n_layers=args.layers, stem_k=args.stem_k, identity=args.ident, n_resid=args.resid,
        skip=args.skip,
    )


def cross_validate(args: argparse.Namespace, kind: str, seed: int) -> tuple[float, list[int]]:
    """Train and test on every outer fold of one (kind, data seed).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    kind : str
        Signal kind, a key of ``signal_kinds.KINDS``.
    seed : int
        Data seed: it seeds the generator, the folds and (with the fold) the training.

    Returns
    -------
    mean_accuracy : float
        Test accuracy averaged over the folds.
    selected_epochs : list of int
        The checkpointed epoch of each fold.
    """
    dataset = make_kind(kind, seed)
    scans_by_id = {scan.scan_id: scan for scan in dataset.scans}

    def inputs(ids):
        return torch.tensor(np.stack([scans_by_id[i].timeseries for i in ids]), dtype=torch.float32)

    def labels(ids):
        return torch.tensor([scans_by_id[i].label for i in ids])

    pathways = [(form, int(scale)) for form in args.forms for scale in args.scales]
    accuracies, selected_epochs = [], []
    for split in make_splits(dataset, seed, N_FOLDS, VAL_FRACTION):
        # seeded per fold, so that a fold's run does not depend on the folds before it
        torch.manual_seed(seed * 100 + split.fold)
        x_train, y_train = inputs(split.train), labels(split.train)
        x_val, y_val = inputs(split.val), labels(split.val)
        x_test, y_test = inputs(split.test), labels(split.test)
        model = build_model(args, dataset.n_rois, dataset.n_classes, pathways)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
        best_val_acc, best_val_loss = -1, 1e9
        best_state = None
        n_bad_epochs = 0
        best_epoch = 0
        for epoch in range(args.epochs):
            model.train()
            order = torch.randperm(len(y_train))
            for start in range(0, len(order), BATCH_SIZE):
                batch = order[start:start + BATCH_SIZE]
                loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                optimizer.step()
            model.eval()
            with torch.no_grad():
                val_logits = model(x_val)
                val_acc = balanced_accuracy(y_val.numpy(), val_logits.argmax(1).numpy())
                val_loss = F.cross_entropy(val_logits, y_val).item()
            if (val_acc, -val_loss) > (best_val_acc, -best_val_loss):
                best_val_acc, best_val_loss = val_acc, val_loss
                best_state = {key: value.clone() for key, value in model.state_dict().items()}
                n_bad_epochs = 0
                best_epoch = epoch
            else:
                n_bad_epochs += 1
            if args.v:
                with torch.no_grad():
                    test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
                print(f"  ep{epoch} loss {loss.item():.3f} val {val_acc:.3f} test {test_acc:.3f}", flush=True)
            if n_bad_epochs >= args.patience:
                break
        model.load_state_dict(best_state)
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        accuracies.append(accuracy)
        selected_epochs.append(best_epoch)
        if args.v:
            print(f" fold {split.fold} acc {accuracy:.3f} sel {best_epoch}", flush=True)
    return np.mean(accuracies), selected_epochs


def build_parser() -> argparse.ArgumentParser:
    """The command line (option names are cited in docs/models.md: keep them)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["events"], help="signal kinds (signal_kinds.KINDS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="data seeds")
    parser.add_argument("--forms", nargs="+", default=["raw", "diff"], help="pathway forms")
    parser.add_argument("--scales", nargs="+", default=["1"], help="pathway scales (each form at each)")
    parser.add_argument("--d", type=int, default=32, help="width of each pathway's output")
    parser.add_argument("--F", type=int, default=4, help="channels per ROI of the per-ROI encoder")
    parser.add_argument("--patch", type=int, default=2, help="stride of the per-ROI stem")
    parser.add_argument("--pool", default="energy", choices=sorted(POOL_WIDTHS), help="pooling over time")
    parser.add_argument("--mixer", default="score", choices=MIXERS, help="ROI-wise read-out")
    parser.add_argument("--layers", type=int, default=1, help="BiMamba blocks per encoder")
    parser.add_argument("--drop", type=float, default=0.1, help="dropout probability")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate")
    parser.add_argument("--wd", type=float, default=1e-2, help="AdamW weight decay")
    parser.add_argument("--epochs", type=int, default=40, help="most epochs per fold")
    parser.add_argument("--patience", type=int, default=8, help="epochs without improvement before stopping")
    parser.add_argument("--stem_k", type=int, default=1, help="stem kernel, in patches")
    parser.add_argument("--enc", default="roi", choices=ENCODERS, help="per-ROI, per-time-step or both")
    parser.add_argument("--te_d", type=int, default=16, help="embedding width of the per-time-step encoder")
    parser.add_argument("--v", action="store_true", help="print every epoch")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-filler", action="store_true",
                        help="events kinds without the matched-energy filler (event_filler=false)")
    parser.add_argument("--ident", action="store_true", help="identity instead of the per-ROI encoder")
    parser.add_argument("--resid", type=int, default=0, help="number of zero-initialised corrections per ROI")
    parser.add_argument("--skip", action="store_true", help="concatenate the input's own statistics")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run every (kind, data seed) and print one line each."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.no_filler:
        for kind_config in KINDS.values():
            if kind_config.get("signal_form") == "events":
                kind_config["event_filler"] = False
    for kind in args.kinds:
        for seed in args.seeds:
            start = time.time()
            accuracy, selected_epochs = cross_validate(args, kind, seed)
            print(f"{kind} seed {seed} acc {accuracy:.3f} sel {selected_epochs} {time.time() - start:.0f}s"
                  f" | {vars(args)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
