"""The bundled example end to end: a plug-in architecture benchmarked against the baselines."""

import math
from pathlib import Path

import pytest
import torch

from ganbench.cli import main
from ganbench.config import load_suite
from ganbench.store import load_rows

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
    from ganbench.executors import validate_suite
    from ganbench.plugins import load_plugin

    load_plugin(str(EXAMPLES / "upsample_gan.py"))
    suite = load_suite(str(EXAMPLES / "digits_vs_baselines.toml"))
    validate_suite(suite)
    assert [label for label, _ in suite.settings] == ["upsample/ns", "dcgan/ns", "dcgan/wgan-gp"]
    assert suite.seeds == (0, 1) and {cfg.dataset for _, cfg in suite.settings} == {"digits"}
