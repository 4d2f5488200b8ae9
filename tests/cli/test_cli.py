"""The command-line layer: every subcommand registered, shared flags, one device resolver, exit codes."""

from __future__ import annotations

import importlib

import pytest
import torch

from neurossm import cli
from neurossm.cli import common
from neurossm.errors import ConfigError, DataNotFoundError
from neurossm.training.device import resolve_device


def test_every_subcommand_has_the_logging_flags_and_only_device_users_have_device():
    parser = cli.build_parser()
    for name, (_, _, takes_device) in cli.SUBCOMMANDS.items():
        sub = parser._subparsers._group_actions[0].choices[name]
        flags = {s for a in sub._actions for s in a.option_strings}
        assert {"--quiet", "--verbose"} <= flags, name
        assert ("--device" in flags) == takes_device, name


def test_a_subcommand_module_that_fails_to_import_fails_loudly(monkeypatch):
    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "neurossm.cli.compare":
            raise ModuleNotFoundError("No module named 'neurossm.missing'", name="neurossm.missing")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="neurossm.missing"):
        cli.build_parser()


def _parser_raising(exc: BaseException):
    parser = cli.standalone_parser("models")

    def boom(args):
        raise exc

    parser.set_defaults(func=boom)
    return parser


@pytest.mark.parametrize("exc, code", [
    (ConfigError("bad option"), common.EXIT_USER_ERROR),
    (DataNotFoundError("no such file"), common.EXIT_USER_ERROR),
    (KeyboardInterrupt(), common.EXIT_INTERRUPTED),
])
def test_exit_code_policy(exc, code, caplog):
    assert cli.main([], _parser_raising(exc)) == code
    assert "Traceback" not in caplog.text


def test_an_unexpected_error_is_not_hidden():
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main([], _parser_raising(RuntimeError("a bug")))


def test_device_resolver_auto_cpu_and_gpu_request_without_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            assert resolve_device("cuda:1") == torch.device("cpu")


def test_tester_and_train_share_their_flags():
    a = cli.standalone_parser("train").parse_args(["--dataset", "synthetic", "--seeds", "1", "2"])
    b = cli.build_parser().parse_args(["train", "--dataset", "synthetic", "--seeds", "1", "2"])
    assert {k: v for k, v in vars(a).items() if k != "command"} == {k: v for k, v in vars(b).items() if k != "command"}
    assert a.dataset == "SYNTHETIC" and a.device == "auto"
