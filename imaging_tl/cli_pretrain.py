"""The ``imaging-tl pretrain`` sub-command (kept beside :mod:`imaging_tl.cli`, which
registers it): self-supervised pretraining from a YAML file into a run directory.

Examples
--------
>>> import argparse
>>> sub = argparse.ArgumentParser().add_subparsers()
>>> add_pretrain(sub).prog.endswith("pretrain")
True
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_pretrain", "pretrain_command"]


def pretrain_command(args: argparse.Namespace) -> int:
    """Run :func:`imaging_tl.pretrain.pretrain`; a bad configuration or bad data is a
    message without a traceback and exit code 2.

    Examples
    --------
    >>> pretrain_command(argparse.Namespace(config=None, resume=None))
    2
    """
    from imaging_tl.config import ConfigError
    from imaging_tl.pipeline import InputError

    def refuse(msg: object) -> int:
        print(f"imaging-tl pretrain: {msg}", file=sys.stderr)
        return 2

    if args.config is None and args.resume is None:
        return refuse("give a CONFIG file (or --resume RUN_DIR)")
    try:
        if args.check:
            from imaging_tl.config import load_pretrain_config

            print(load_pretrain_config(args.config, args.set or []).to_yaml(), end="")
            print("configuration is valid", file=sys.stderr)
            return 0
        from imaging_tl.pretrain import pretrain

        result = pretrain(args.config, out=args.out, resume=args.resume,
                          overrides=args.set or [], verbose=not args.quiet)
    except (ConfigError, InputError) as exc:
        return refuse(exc)
    print(result.summary())
    return 0


def add_pretrain(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``pretrain`` on the command's sub-parsers; returns its parser."""
    p = sub.add_parser(
        "pretrain",
        help="self-supervised pretraining (SimSiam) on unlabelled images; the run "
             "directory is a model.source for imaging-tl run",
        description=(
            "unlabelled images (a folder, a CSV or a census) -> the preprocessing and array "
            "cache of 'run' -> SimSiam on a registered backbone (ImageNet or random start) "
            "-> runs/<name>-<timestamp>/ (config.yaml, run.json, history.csv with the loss, "
            "the collapse statistics and the linear-probe AUC, a checkpoint per epoch, "
            "model.keras + contract.json, data_index.csv, plots/). Use the run directory as "
            "model.source of 'imaging-tl run'. Interrupted, continue with --resume RUN_DIR."),
    )
    p.add_argument("config", nargs="?", help="the pretraining YAML file "
                                             "(see pipelines/pretrain.yaml)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                   help="override a key, e.g. --set pretrain.epochs=5 (repeatable)")
    p.add_argument("--out", help="run directory to create (default: <output>/<name>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted pretraining run after its last epoch")
    p.add_argument("--check", action="store_true",
                   help="only validate the configuration and print it resolved")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true",
                   help="keep TensorFlow's own start-up and log lines")
    p.set_defaults(func=pretrain_command)
    return p
