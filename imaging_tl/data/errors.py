"""The error of an unusable dataset table, listing every problem found."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A dataset table is unusable; the message lists every problem found, not only the first.

    Attributes
    ----------
    problems : list of str
        One line per problem (file, column or class named).

    Examples
    --------
    >>> print(DatasetError(["a.dcm: file not found"], "labels.csv"))
    labels.csv: 1 problem(s) in the dataset:
      a.dcm: file not found
    """

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        head = f"{source}: " if source else ""
        n = len(self.problems)
        body = "\n  ".join(self.problems[:50])
        more = f"\n  ... and {n - 50} more" if n > 50 else ""
        super().__init__(f"{head}{n} problem(s) in the dataset:\n  {body}{more}")
