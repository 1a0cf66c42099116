"""The ``[[published]]`` rows of a ``paper-...`` suite: numbers as a paper printed them.

A published row names one setting of its suite (label and dataset), where the number was printed
(table and row), how many runs it averages and whether its spread is a standard deviation or a
standard error. ``ganbench.results.published`` sets them beside ganbench's own and gives verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ganbench.errors import UserError

SPREADS = ("std", "se", "none")  # what the published ± means; "none": no spread printed


@dataclass(frozen=True)
class Published:
    """One published result: a setting of the suite on one dataset, as printed in a paper."""

    setting: str  # label of a setting of the suite
    dataset: str  # the dataset of that setting it was measured on
    source: str  # paper, table and row, e.g. "Srivastava et al. 2017, Table 1, row GAN"
    n: int  # runs behind the mean (0: not stated)
    spread: str  # "std", "se" or "none"
    values: tuple[tuple[str, float, float], ...]  # (metric, mean, spread; nan when spread is "none")
    note: str = ""  # how the paper's number maps onto ganbench's metric, where that needs saying

    def standard_error(self, spread: float) -> float:
        """The published mean's standard error (nan when it cannot be known)."""
        if self.spread == "se":
            return spread
        if self.spread == "std" and self.n > 0:
            return spread / math.sqrt(self.n)
        return math.nan


_KEYS = {"setting", "dataset", "source", "n", "spread", "values", "note"}


def parse_published(entries, where: str) -> tuple[Published, ...]:
    """The ``[[published]]`` tables of a suite file; malformed entries are UserErrors naming the file."""
    if not isinstance(entries, list):
        raise UserError(f"{where}: 'published' must be a list of tables ([[published]])")
    out, seen = [], set()  # seen: (setting, dataset, source, metric), each given once
    for i, e in enumerate(entries):
        at = f"{where}: published[{i}]"
        if not isinstance(e, dict):
            raise UserError(f"{at} must be a table")
        unknown = sorted(set(e) - _KEYS)
        if unknown:
            raise UserError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
        missing = [k for k in ("setting", "dataset", "source", "values") if k not in e]
        if missing:
            raise UserError(f"{at}: missing key {missing[0]!r}")
        spread = e.get("spread", "none")
        if spread not in SPREADS:
            raise UserError(f"{at}: spread must be one of {', '.join(SPREADS)}, got {spread!r}")
        n = e.get("n", 0)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise UserError(f"{at}: n must be an integer >= 0, got {n!r}")
        if spread == "std" and n < 2:
            raise UserError(f"{at}: a standard deviation needs the number of runs behind it (n >= 2)")
        if spread == "se" and n == 1:
            raise UserError(f"{at}: one run has no standard error (give n >= 2, or leave n out when the paper "
                            "does not state it)")
        values = []
        if not isinstance(e["values"], dict) or not e["values"]:
            raise UserError(f"{at}: values must be a table of metric = mean or [mean, spread]")
        for metric, v in e["values"].items():
            pair = v if isinstance(v, list) else [v]
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair) or len(pair) not in (1, 2):
                raise UserError(f"{at}: values.{metric} must be a number or [mean, spread], got {v!r}")
            if (len(pair) == 2) != (spread != "none"):
                raise UserError(f"{at}: values.{metric}: give [mean, spread] when spread is std or se, "
                                "and a single mean when it is none")
            if not all(math.isfinite(x) for x in pair) or (len(pair) == 2 and pair[1] < 0):
                raise UserError(f"{at}: values.{metric} must be finite, with a spread >= 0, got {v!r}")
            values.append((str(metric), float(pair[0]), float(pair[1]) if len(pair) == 2 else math.nan))
        row = Published(str(e["setting"]), str(e["dataset"]), str(e["source"]), n, spread, tuple(values),
                        str(e.get("note", "")))
        for metric, _, _ in values:
            key = (row.setting, row.dataset, row.source, metric)
            if key in seen:
                raise UserError(f"{at}: values.{metric}: a second number for setting {row.setting!r} on "
                                f"{row.dataset!r} from {row.source!r}")
            seen.add(key)
        out.append(row)
    return tuple(out)
