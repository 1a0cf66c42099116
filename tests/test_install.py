"""The package works outside the repository: a wheel built from the checkout carries the suites and
baselines, and an installed copy lists and runs them from any folder."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """The wheel of this checkout, unpacked into a folder of its own (as pip would install it)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True, cwd=dist)
    (wheel,) = dist.glob("ganbench-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def _ganbench(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "ganbench", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_wheel_holds_every_package_suite_and_baseline(unpacked):
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "ganbench").rglob("__init__.py")}
    shipped = {p.parent.relative_to(unpacked).as_posix() for p in unpacked.rglob("__init__.py")}
    assert packages <= shipped
    suites = {p.name for p in (ROOT / "baselines").iterdir() if p.suffix in (".toml", ".json")}
    assert suites == {p.name for p in (unpacked / "ganbench" / "baselines").iterdir()}


def test_installed_package_lists_and_runs_suites_from_another_folder(unpacked, tmp_path):
    listing = _ganbench(unpacked, tmp_path, "list", "suites")
    assert listing.returncode == 0, listing.stderr
    names = {line.split()[0] for line in listing.stdout.splitlines()}
    assert {p.stem for p in (ROOT / "baselines").glob("*.toml")} == names
    run = _ganbench(unpacked, tmp_path, "run", "--suite", "ci", "--seeds", "0", "--set", "steps=3",
                    "--set", "eval_every=0", "--no-progress", "--out", "res")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "res" / "results.jsonl").is_file()
    where = subprocess.run([sys.executable, "-c", "import ganbench; print(ganbench.__file__)"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(unpacked)}, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(unpacked))
