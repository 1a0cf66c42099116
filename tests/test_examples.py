"""The bundled example end to end: a plug-in architecture benchmarked against the baselines."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ganbench.cli import main
from ganbench.config import load_suite
from ganbench.results.store import load_rows

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is faster than several waiting on each other for microsecond ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_example_suite_ranks_the_plugin_beside_the_baselines(tmp_path, capsys):
    suite = EXAMPLES / "digits_vs_baselines.toml"
    out = tmp_path / "res"
    # the example as documented, with fewer steps, one seed and three of its metrics to stay quick
    argv = ["run", "--plugin", str(EXAMPLES / "upsample_gan.py"), "--suite", str(suite), "--seeds", "0",
            "--set", "steps=10", "--set", "metrics=fid_domain,classes,class_kl", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out

    lines, header = {}, []  # label -> its table row, split into cells; the header's cells
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "dataset":
            header = cells
        elif len(cells) > 2 and cells[0] == "digits":
            lines[cells[1]] = cells
    assert list(lines) == ["upsample/ns", "dcgan/ns", "dcgan/wgan-gp"]  # the file's order: the new one first

    rows = [r for r in load_rows(out) if r["final"]]
    assert {r["label"] for r in rows} == set(lines) and {r["metric"] for r in rows} == {"fid_domain", "classes",
                                                                                     "class_kl"}
    assert all(r["status"] == "ok" and math.isfinite(r["value"]) for r in rows)
    by = {(r["label"], r["metric"]): r for r in rows}
    assert by["upsample/ns", "fid_domain"]["model"] == "upsample"
    assert by["dcgan/wgan-gp", "fid_domain"]["loss"] == "wgan-gp"
    # the plug-in is part of each row's provenance, by content hash
    assert any("upsample_gan.py" in k for k in by["upsample/ns", "classes"]["env"]["plugins"])
    # the table's fid_domain column shows the rows' values (rounded for display)
    column = next(i for i, name in enumerate(header) if name.startswith("fid_domain"))
    for label, cells in lines.items():
        assert float(cells[column].split()[0].replace(",", "")) == pytest.approx(by[label, "fid_domain"]["value"], rel=0.01)


def test_example_suite_at_full_size_validates(tmp_path):
    from ganbench.plugins import load_plugin
    from ganbench.runs.suite import validate_suite

    load_plugin(str(EXAMPLES / "upsample_gan.py"))
    suite = load_suite(str(EXAMPLES / "digits_vs_baselines.toml"))
    validate_suite(suite)
    assert [label for label, _ in suite.settings] == ["upsample/ns", "dcgan/ns", "dcgan/wgan-gp"]
    assert suite.seeds == (0, 1) and {cfg.dataset for _, cfg in suite.settings} == {"digits"}


def _ring_points(counts) -> np.ndarray:
    """Points exactly at the ring8 mode centres, counts[k] of them at mode k."""
    from ganbench.config import RunConfig
    from ganbench.data import DATASETS

    means = DATASETS["ring8"](RunConfig(dataset="ring8")).means.numpy()
    return np.concatenate([np.repeat(means[k : k + 1], c, axis=0) for k, c in enumerate(counts)]).astype(np.float32)


@pytest.mark.parametrize("counts, expected", [
    ([313, 313, 313, 313, 312, 312, 312, 312], 8 * 312 / 2500),  # as balanced as 2,500 points can be
    ([500, 500, 500, 500, 500, 0, 0, 0], 0.0),  # three modes missed
    ([1000, 250, 250, 250, 250, 250, 250, 0], 0.0),
    ([1250, 250, 250, 150, 150, 150, 150, 150], 8 * 150 / 2500),
])
def test_metric_plugin_lists_and_scores_its_closed_form(tmp_path, capsys, counts, expected):
    """The example metric plug-in: listed by `ganbench list metrics --plugin`, and computed by
    `ganbench eval` on points placed at the modes, where its value is K * min count / total."""
    plugin = str(EXAMPLES / "mode_balance.py")
    assert main(["list", "metrics", "--plugin", plugin]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mode_balance ")]
    assert len(listed) == 1 and "↑" in listed[0] and "mode2d" in listed[0]
    points = tmp_path / "points.npz"
    np.savez(points, samples=_ring_points(counts))
    out = tmp_path / "res"
    argv = ["eval", "--plugin", plugin, "--dataset", "ring8", "--samples", str(points), "--metrics", "modes,mode_balance",
            "--out", str(out)]
    assert main(argv) == 0
    values = {r["metric"]: r["value"] for r in load_rows(out)}
    assert values["mode_balance"] == pytest.approx(expected, abs=1e-12)
    assert values["modes"] == sum(c > 0 for c in counts)
