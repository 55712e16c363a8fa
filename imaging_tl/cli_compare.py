"""The ``imaging-tl compare`` sub-command (kept beside :mod:`imaging_tl.cli`, which
registers it): finished runs side by side, on the console, as CSV and as an HTML page.

Examples
--------
>>> import argparse
>>> sub = argparse.ArgumentParser().add_subparsers()
>>> add_compare(sub).prog.endswith("compare")
True
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_compare", "compare_command"]


def compare_command(args: argparse.Namespace) -> int:
    """Print :func:`imaging_tl.pipeline.compare.compare_runs`'s table and write the CSV and
    HTML asked for. Unreadable run directories are listed on stderr and the others compared;
    exit code 2 when none could be read or ``--sort`` names no metric of the runs.

    Examples
    --------
    >>> compare_command(argparse.Namespace(runs=["no/such/run"], sort=None, csv=None,
    ...                                    html=None))
    2
    """
    from imaging_tl.pipeline.compare import compare_runs

    try:
        comparison = compare_runs(args.runs, sort=args.sort)
    except ValueError as exc:
        print(f"imaging-tl compare: {exc}", file=sys.stderr)
        return 2
    for problem in comparison.problems:
        print(f"imaging-tl compare: cannot compare {problem}", file=sys.stderr)
    if not comparison.rows:
        print("imaging-tl compare: no readable run directory among those given",
              file=sys.stderr)
        return 2
    comparison.problems = []  # said on stderr already
    print(comparison.format())
    try:
        if args.csv:
            print(f"wrote {comparison.write_csv(args.csv)}")
        if args.html:
            print(f"wrote {comparison.write_html(args.html)}")
    except OSError as exc:
        print(f"imaging-tl compare: cannot write {exc.filename}: {exc.strerror}",
              file=sys.stderr)
        return 2
    return 0


def add_compare(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``compare`` on the command's sub-parsers; returns its parser."""
    p = sub.add_parser(
        "compare",
        help="finished runs side by side: differing config keys, data, metrics with CIs, "
             "time",
        description=(
            "one table of runs: name, date, the configuration keys that differ between "
            "them, the data-manifest hash, the headline test metrics with their 95%% CIs and "
            "the run time, sorted by --sort. Runs on other data (another data-manifest "
            "hash than most runs) are marked NOT COMPARABLE. Unreadable run directories "
            "are reported and skipped."),
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--sort", metavar="METRIC",
                   help="a metric of metrics.json (best first; default: the headline, e.g. "
                        "roc_auc), or date, time, name")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
    p.add_argument("--html", metavar="PATH", help="also write a small HTML page")
    p.set_defaults(func=compare_command)
    return p
