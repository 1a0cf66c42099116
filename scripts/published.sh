#!/usr/bin/env bash
# Run the paper-... suites in parts and write their published-vs-ganbench tables to results/:
#
#   scripts/published.sh                         # every part below, in order
#   scripts/published.sh paper-gdpp-2d:gan       # only these parts (suite:setting[,setting...]; the
#                                                # settings of one part share the --jobs workers)
#   scripts/published.sh --tables-only           # no training: tables from what has finished
#
# Options: --work DIR   results folders, one per suite (default: ganbench-leaderboard-work); runs
#                       already there are skipped and unfinished ones resumed (--resume), so the
#                       script can be stopped at any time and started again
#          --out DIR    where the tables go (default: results)
#          --jobs N     runs in parallel (default: 2, one torch thread each)
#          --checkpoint-every N
#                       steps between a run's checkpoints (default: a tenth of the run), so a
#                       stopped part loses at most that much
#          --seeds S    train only these of the suites' seeds (0,1,2 or 0-4; default: all), for a
#                       stretch that must end on a run's last step; the tables always take every
#                       finished seed of the suite
#
# Writes OUT/published.md (the verdict table of every suite, the suites' scale and deviations, and
# the wall time of each part), OUT/published.csv (every number behind the verdicts),
# OUT/published-<suite>.html (the report of each suite), OUT/published-rows/<suite>.jsonl.gz (every
# result row of the finished runs, their evaluations during training as well as the final one: a
# work folder that does not exist yet starts from them, so a suite continues across machines
# without retraining what has finished and its report keeps its metric curves; an unfinished run's
# checkpoints, which hold weights, stay in the work folder, so on another machine it starts again
# from step 0) and appends one line per part to OUT/published-timings.csv: when it ran, how long
# it took, how many runs it finished.
set -euo pipefail
# Parts in the order they run: cheapest and most informative first. A part's runs start breadth
# first (every setting's first seed before any second), so the long PacGAN parts, which take both
# of their settings, reach every published row early.
all_parts=(
    paper-gdpp-2d:gan
    paper-gdpp-2d:gan-minimax
    paper-gdpp-2d:unrolled-gan
    paper-gdpp-2d:wgan-gp
    paper-pacgan-2d:gan,pacgan2
    paper-pacgan-stacked-mnist:dcgan,pacdcgan2
)
parts=() work=ganbench-leaderboard-work out=results jobs=2 train=1 every=0 seeds=()
while [ $# -gt 0 ]; do
    case $1 in
        --work) work=$2; shift ;;
        --out) out=$2; shift ;;
        --jobs) jobs=$2; shift ;;
        --checkpoint-every) every=$2; shift ;;
        --seeds) seeds=(--seeds "$2"); shift ;;
        --tables-only) train= ;;
        -*) echo "usage: $0 [--work DIR] [--out DIR] [--jobs N] [--checkpoint-every N] [--seeds S] [--tables-only] [suite:setting ...]" >&2; exit 2 ;;
        *) parts+=("$1") ;;
    esac
    shift
done
[ ${#parts[@]} -gt 0 ] || parts=("${all_parts[@]}")
ganbench=${GANBENCH:-ganbench}
python=${PYTHON:-$(dirname "$(command -v "$ganbench")")/python}
[ -x "$python" ] || python=python3
if [ -n "$train" ] && [ ${#seeds[@]} -gt 0 ]; then  # seeds outside a suite's would train runs no table shows
    for part in "${parts[@]}"; do
        "$python" - "${part%%:*}" "${seeds[1]}" <<'PY' || exit 2
import argparse
import sys
from ganbench.cli import _seeds
from ganbench.config import load_suite
from ganbench.errors import UserError
try:
    suite = load_suite(sys.argv[1])
    extra = sorted(set(_seeds(sys.argv[2])) - set(suite.seeds))
except (argparse.ArgumentTypeError, UserError) as e:  # a malformed list, an unknown suite
    sys.exit(f"published.sh: --seeds {sys.argv[2]!r}: {e}")
if extra:
    sys.exit(f"published.sh: --seeds {sys.argv[2]!r}: suite {suite.name} has no seed {', '.join(map(str, extra))} "
             f"(its seeds: {', '.join(map(str, suite.seeds))})")
PY
    done
fi
mkdir -p "$work" "$out"
timings=$out/published-timings.csv
[ -f "$timings" ] || echo "date,suite,setting,seconds,runs_finished,runs_total,cpus,jobs" > "$timings"
count() {  # finished runs of one suite setting in its folder
    "$python" - "$@" <<'PY'
import sys
from pathlib import Path
from ganbench.config import load_suite, select_settings
from ganbench.results.store import finished_run_ids
suite = select_settings(load_suite(sys.argv[1]), sys.argv[2].split(","))
done = finished_run_ids(Path(sys.argv[3])) if Path(sys.argv[3], "results.jsonl").exists() else set()
ids = {c.run_id for _, c in suite.runs()}
print(len(ids & done), len(ids))
PY
}
for suite in $(printf '%s\n' "${all_parts[@]}" | cut -d: -f1 | uniq); do  # continue from committed rows
    saved=$out/published-rows/$suite.jsonl.gz
    if [ -f "$saved" ] && [ ! -e "$work/$suite/results.jsonl" ]; then
        mkdir -p "$work/$suite" && gunzip -c "$saved" > "$work/$suite/results.jsonl"
    fi
done
if [ -n "$train" ]; then
    for part in "${parts[@]}"; do
        suite=${part%%:*} setting=${part#*:}
        read -r before total < <(count "$suite" "$setting" "$work/$suite")
        [ "$before" -lt "$total" ] || { echo "$part: all $total runs finished"; continue; }
        start=$(date +%s)
        "$ganbench" run --suite "$suite" $(printf -- '--setting %s ' ${setting//,/ }) --out "$work/$suite" --resume --no-progress \
            --jobs "$jobs" --threads 1 --checkpoint-every "$every" ${seeds[@]+"${seeds[@]}"} || echo "$part: stopped, or some runs failed (recorded in the folder)"
        read -r after total < <(count "$suite" "$setting" "$work/$suite")
        echo "$(date -u +%FT%TZ),$suite,${setting//,/+},$(( $(date +%s) - start )),$after,$total,$(nproc --all),$jobs" >> "$timings"
    done
fi
"$python" - "$out" "$work" "$timings" "${all_parts[@]}" <<'PY'
import gzip
import json
import sys
from pathlib import Path

import pandas as pd

from ganbench.config import load_suite
from ganbench.results.published import display, legend
from ganbench.results.report import write_report
from ganbench.io import atomic_write_bytes, atomic_write_text
from ganbench.results.progress import unfinished_runs
from ganbench.results.store import frame, load_rows
from ganbench.results.formats import to_markdown
from ganbench.results.tables import comparison_tables, legend_lines, published_table

out, work, timings = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
names = list(dict.fromkeys(p.split(":", 1)[0] for p in sys.argv[4:]))
md = ["# Published results beside ganbench's", "",
      "Generated by `scripts/published.sh` from the paper-... suites; do not edit by hand. Each table sets "
      "a paper's printed numbers beside ganbench's on the paper's protocol, with a verdict.", ""]
csv = []
spent = pd.read_csv(timings) if timings.exists() else pd.DataFrame(columns=["suite", "setting", "seconds"])
for name in names:
    suite = load_suite(name)
    folder = work / name
    ids = {c.run_id for _, c in suite.runs()}
    every = load_rows(folder) if (folder / "results.jsonl").exists() else []  # (a line being written is left out)
    done = {r["run_id"] for r in every if r.get("final")} & ids
    finished = len(done)
    md += [f"## {name}", "", suite.description, "", f"Citation: {suite.citation}", "",
           f"Scale: {finished} of {len(ids)} runs finished (seeds {', '.join(map(str, suite.seeds))})."]
    if finished < len(ids):
        md[-1] += " PARTIAL: the settings without finished runs show `not comparable: not run yet`."
    under_way = [u for u in unfinished_runs(folder, every) if u.run_id in ids]
    if under_way:
        md += ["", "Under way (their checkpoints stay in the work folder, not in the repository; `--resume` on the "
               "machine that holds them continues them):", ""] + [f"- {u.describe()}" for u in under_way]
    md.append("")
    if finished:
        rows = frame([r for r in every if r.get("run_id") in ids])
        # the evaluations during training too (the curves), not the rows of an attempt that failed
        keep = [r for r in every if r.get("run_id") in done and r.get("status") != "failed"]
        (out / "published-rows").mkdir(exist_ok=True)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep)
        atomic_write_bytes(out / "published-rows" / f"{name}.jsonl.gz", gzip.compress(text.encode(), mtime=0))
        c = published_table(rows, [suite])
        tables = comparison_tables(rows)
        md += [to_markdown(display(c)), "", "Every setting of the suite (mean over seeds and its 95 % interval), including those "
               "without a published row:", ""] + [to_markdown(t) + "\n" for t in tables] + legend_lines(tables) + [""]
        csv.append(c)
        write_report(folder, out / f"published-{name}.html", title=f"ganbench: {name} beside its paper",
                     notes=[f"{finished} of {len(ids)} runs of suite {name} finished."], rows=rows)
    md += [f"- {line}" for line in legend([suite])[1:]] + [""]
    if finished:
        runs = rows[rows["final"].astype(bool)].drop_duplicates("run_id")
        per_run = runs.groupby(["label", "dataset"], sort=False)["timing.train_seconds"].mean()
        md += ["Training time per run (mean over its finished seeds, one torch thread, 2 runs sharing 2 cores): "
               + ", ".join(f"{label} on {dataset} {sec / 60:.1f} min" for (label, dataset), sec in per_run.items())
               + ".", ""]
    mine = spent[spent["suite"] == name]
    if len(mine):
        per = mine.groupby("setting", sort=False).agg(seconds=("seconds", "sum"), jobs=("jobs", list))
        md += ["Wall time of each part (seconds on 2 cores, summed over the stretches that ran it, with each "
               "stretch's `--jobs`): "
               + ", ".join(f"{k} {int(v.seconds):,} (--jobs {', '.join(map(str, v.jobs))})" for k, v in per.iterrows())
               + ".", ""]
md += [legend([])[0], ""]
atomic_write_text(out / "published.md", "\n".join(md))
if csv:
    atomic_write_text(out / "published.csv", pd.concat(csv).to_csv(index=False))
print(f"wrote {out / 'published.md'}")
PY
