"""Results store: whole lines only, atomic files, rollback of failed appends, loading."""

import json
import multiprocessing as mp
import os

import pandas as pd
import pytest

from ganbench import io as gio
from ganbench.errors import UserError
from ganbench.results import store


def _row(i, **extra):
    return {"run_id": f"r{i}", "metric": "modes", "value": float(i), "final": True,
            "config": {"lr_g": 0.001}, "protocol": {"num_fake": 2500}, **extra}


def test_append_and_load(tmp_path):
    store.append_rows(tmp_path, [_row(0), _row(1)])
    store.append_rows(tmp_path, [_row(2)])
    rows = store.load_rows(tmp_path)
    assert [r["value"] for r in rows] == [0.0, 1.0, 2.0]
    df = store.load_results(tmp_path)
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert {"run_id", "value", "config.lr_g", "protocol.num_fake"} <= set(df.columns)
    assert store.finished_run_ids(tmp_path) == {"r0", "r1", "r2"}


def test_nan_values_are_refused_not_written(tmp_path):
    store.append_rows(tmp_path, [_row(0)])
    with pytest.raises(ValueError):
        store.append_rows(tmp_path, [_row(1, value=float("nan"))])
    assert len(store.load_rows(tmp_path)) == 1


def test_a_torn_last_line_is_ignored(tmp_path):
    store.append_rows(tmp_path, [_row(0)])
    with open(tmp_path / store.RESULTS, "a") as f:
        f.write('{"run_id": "half')  # a writer killed mid-line (cannot happen through append_rows)
    assert [r["run_id"] for r in store.load_rows(tmp_path)] == ["r0"]


def test_an_append_after_a_torn_last_line_cuts_it_and_keeps_every_row(tmp_path, capsys):
    store.append_rows(tmp_path, [_row(0)])
    whole = (tmp_path / store.RESULTS).read_bytes()
    with open(tmp_path / store.RESULTS, "a") as f:
        f.write('{"run_id": "half')  # a writer killed mid-line
    store.append_rows(tmp_path, [_row(1)])
    assert [r["run_id"] for r in store.load_rows(tmp_path)] == ["r0", "r1"]  # not a corrupt line 2
    assert (tmp_path / store.RESULTS).read_bytes() == whole + (json.dumps(_row(1), sort_keys=True) + "\n").encode()
    assert "ended in a torn line (16 bytes)" in capsys.readouterr().err
    (tmp_path / store.RESULTS).write_text('{"run_id": "half')  # a torn first line: the file is cut to nothing
    store.append_rows(tmp_path, [_row(2)])
    assert [r["run_id"] for r in store.load_rows(tmp_path)] == ["r2"]


def test_failed_append_is_rolled_back(tmp_path, monkeypatch):
    store.append_rows(tmp_path, [_row(0)])
    size = (tmp_path / store.RESULTS).stat().st_size
    real_write = os.write

    def short_then_full_disk(fd, data):
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))  # a partial write ...
        raise OSError(28, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(store.os, "write", short_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.append_rows(tmp_path, [_row(1), _row(2)])
    monkeypatch.undo()
    assert (tmp_path / store.RESULTS).stat().st_size == size
    assert [r["run_id"] for r in store.load_rows(tmp_path)] == ["r0"]


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "config.json"
    gio.atomic_write_json(path, {"a": 1})
    gio.atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}

    def crash(*_):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError):
        gio.atomic_write_json(path, {"a": 3})
    assert json.loads(path.read_text()) == {"a": 2}  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # open() makes 0666 minus the umask
    gio.atomic_write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


def _writer(out, k, n):
    for i in range(n):
        # rows larger than PIPE_BUF (4 KiB) and, every tenth batch, than a 64 KiB pipe or page-cache chunk
        big = "x" * (70_000 if i % 10 == 0 else 5000)
        store.append_rows(out, [_row(k * 1000 + i, pad=big, writer=k), _row(k * 1000 + i + 500, writer=k)])


def test_concurrent_writers_lose_no_row(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path, k, 40)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = (tmp_path / store.RESULTS).read_text().splitlines()
    assert len(lines) == 4 * 40 * 2
    rows = [json.loads(line) for line in lines]  # every line is valid JSON
    assert len({r["run_id"] for r in rows}) == 4 * 40 * 2
    for k in range(4):  # each writer's batches arrive whole and in its own order
        mine = [r["run_id"] for r in rows if r["writer"] == k]
        assert mine == [f"r{k * 1000 + i + j}" for i in range(40) for j in (0, 500)]


def test_missing_folder_or_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="results folder not found"):
        store.load_rows(tmp_path / "nope")
    with pytest.raises(UserError, match="no results.jsonl"):
        store.load_rows(tmp_path)
    (tmp_path / store.RESULTS).write_text("not json\n")
    with pytest.raises(UserError, match="results.jsonl:1: not a JSON row"):
        store.load_rows(tmp_path)


@pytest.mark.parametrize("line", ["[1, 2]", "null", "42", '"x"', '{"a": 1}', '{"metric": "modes", "final": true}',
                                  '{"run_id": 7, "metric": "modes"}'])
def test_a_line_that_is_no_result_row_is_a_user_error(tmp_path, capsys, line):
    """Valid JSON that is not a row (not an object, or without a string run_id and metric) is refused
    with its line number, as a line that is not JSON is, not skipped or left to fail later: `ganbench
    table` exits 2 with that one line."""
    from ganbench.cli import main

    good = {"run_id": "r0", "metric": "modes", "final": True}
    (tmp_path / store.RESULTS).write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(UserError, match=r"results.jsonl:2: not a result row \(a JSON object with string fields "
                                        r"run_id, metric\)$"):
        store.load_rows(tmp_path)
    assert main(["table", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl:2: not a result row" in err and len(err.strip().splitlines()) == 1
    (tmp_path / store.RESULTS).write_text(json.dumps(good) + "\n")
    assert store.load_rows(tmp_path) == [good]


def test_environment_records_versions():
    import torch

    env = store.environment(torch.device("cpu"))
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert {"ganbench", "git_commit", "python", "platform", "device_name"} <= set(env)


def test_tests_use_a_cache_and_data_root_of_their_own(hermetic_cache):
    from ganbench.data import data_root
    from ganbench.features.cache import cache_dir

    assert cache_dir().is_relative_to(hermetic_cache) and data_root().is_relative_to(hermetic_cache)
