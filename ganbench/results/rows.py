"""The result row: one metric value of one run at one step, with everything that makes it comparable.

``results.jsonl`` holds one ``Row`` per line (as a JSON object with sorted keys). Tables, reports
and ``check`` read only these rows. Rows of schema 1 are what ganbench has always written; a field
added later is optional, so every row ever written still reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

SCHEMA = 1

STATUSES = ("ok", "diverged", "failed")


@dataclass(frozen=True, kw_only=True)
class Row:
    schema: int  # SCHEMA when written
    suite: str  # the suite's name ("eval" for ``ganbench eval``)
    label: str  # the setting's label within the suite
    run_id: str  # content hash of the run's config (with the samples' hash for ``ganbench eval``)
    group_id: str  # the same without the seed: runs that differ only by seed share it
    model: str
    loss: str
    dataset: str
    seed: int
    step: int  # generator updates done when the value was measured
    final: bool  # the run's last evaluation (tables read only these)
    metric: str
    value: Optional[float]  # None when the run diverged or failed
    higher_is_better: bool
    status: str  # one of STATUSES
    reason: Optional[str]  # why it diverged or failed, or a warning; None when ok
    protocol: dict  # metric version, extractor and its weights hash, sample counts, eval seed, reference split
    protocol_id: str  # hash of ``protocol``: values with different ids are never compared
    config: dict  # the full RunConfig
    env: dict  # ganbench version, git commit, torch, python, platform, device, plug-ins and their hashes
    time: str  # UTC, ISO 8601, seconds
    timing: Optional[dict] = None  # final rows of a trained run: throughput and memory
    stability: Optional[dict] = None  # final rows of a trained run: best-vs-final of the first metric
    source: Optional[dict] = None  # ``ganbench eval``: what was evaluated (path, sha256, kind)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the row; optional fields that are not set are left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not (v is None and k in OPTIONAL)}


REQUIRED = tuple(f.name for f in dataclasses.fields(Row) if f.default is dataclasses.MISSING)
OPTIONAL = tuple(f.name for f in dataclasses.fields(Row) if f.default is not dataclasses.MISSING)


def missing_fields(row: dict) -> list[str]:
    """Required fields a row read from a file lacks (a line that is not a ganbench row)."""
    return [k for k in REQUIRED if k not in row]
