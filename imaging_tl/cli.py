"""The ``imaging-tl`` command.

Each sub-command is a small function that parses nothing itself: argparse does the parsing,
the library does the work. Exit codes: 0 success, 2 bad usage or bad input, 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class UsageError(Exception):
    """Bad input from the user: printed without a stack trace, exit code 2."""


def _census(args: argparse.Namespace) -> int:
    from imaging_tl.io.census import run_census

    try:
        summary = run_census(
            args.directory, args.out, progress=not args.quiet, decode=args.decode
        )
    except NotADirectoryError as exc:
        raise UsageError(str(exc)) from exc
    print(summary.format())
    return 0


def _add_census(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "census",
        help="list every scan under a folder with its header fields and read status",
        description=(
            "Walk DIR (DICOM by content, also gzipped; PNG, JPEG, TIFF) and write one CSV row "
            "per file: the normalised header fields, the transfer syntax and whether the file "
            "reads. Headers are read without decoding pixels where possible. Ends with a lint "
            "summary (mixed photometric interpretations, missing decoders, duplicate "
            "SOPInstanceUIDs, failures and why). Patient names and birth dates are never "
            "written."
        ),
    )
    p.add_argument("directory", help="folder to walk (recursively)")
    p.add_argument("--out", default="census.csv", help="CSV file to write (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--decode",
        action="store_true",
        help="also decode every file's pixels (slower; finds corrupt compressed data that "
        "the header checks cannot see)",
    )
    p.set_defaults(func=_census)


def _cache(args: argparse.Namespace) -> int:
    from imaging_tl.data.cache import ArrayCache

    cache = ArrayCache(args.dir)
    if args.action == "info":
        print(cache.info().format())
        return 0
    try:
        removed = cache.clear(quarantine_only=args.quarantine)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    what = "quarantine records" if args.quarantine else f"{removed} cached arrays"
    print(f"cleared {what} in {cache.root}")
    return 0


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache",
        help="show or clear the cache of preprocessed arrays",
        description=(
            "info: entries, size and quarantined (unreadable) files per preprocessing "
            "pipeline, and left-over temporary files of interrupted writes. clear: delete "
            "the cached arrays (only in a folder that imaging-tl created as a cache)."
        ),
    )
    p.add_argument("action", choices=["info", "clear"], help="what to do")
    p.add_argument("--dir", default=None,
                   help="cache folder (default: $IMAGING_TL_CACHE_DIR or ~/.cache/imaging_tl)")
    p.add_argument("--quarantine", action="store_true",
                   help="clear: only forget the quarantined files (they are retried next run)")
    p.set_defaults(func=_cache)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imaging-tl",
        description="Transfer learning for radiology: census, train, evaluate, predict, export.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_census(sub)
    _add_cache(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"imaging-tl {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
