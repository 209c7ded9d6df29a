"""Optional tracking (``--log tensorboard|wandb``): the numbers written per run and epoch, read back from the files.

tensorboard and wandb are in the dev extra, so these tests run in CI; wandb runs offline (``WANDB_MODE=offline``).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mqarkit.gpu.frontier import get_preset, read_records, run_sweeps
from mqarkit.gpu.frontier.tracking import Tracking, default_log_dir
from mqarkit.tolerances import assert_close


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> tuple[Path, list[dict]]:
    """One sweep (a stack of 2 runs, 2 epochs) tracked by both trackers: TensorBoard in ``tb/``, wandb offline in
    ``wb/``."""
    import wandb

    folder = tmp_path_factory.mktemp("tracked")
    sweeps = get_preset("tiny", epochs=2, families=("attention",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_PROJECT", "mqarkit-test")
        try:
            observers = [Tracking("wandb", str(folder / "wb")).observer()]
            tracking = Tracking("tensorboard", str(folder / "tb"))
            count = run_sweeps(sweeps, folder / "r.jsonl", "cpu", log=print, observers=observers, tracking=tracking)
        finally:
            wandb.teardown()  # the wandb service process started here
    assert count == 2
    return folder, read_records(folder / "r.jsonl")


def _assert_history_matches_record(history: dict[str, list[tuple[int, float]]], rec: dict) -> None:
    """``history``: tag -> [(epoch, value)]; the record holds the same numbers (accuracies at the last epoch)."""
    epochs = list(range(1, rec["epochs_trained"] + 1))
    assert [step for step, _ in history["train/loss"]] == epochs
    assert_close([v for _, v in history["train/loss"]], rec["loss_history"], dtype="float32", context=rec["run_id"])
    assert_close([v for _, v in history["test/accuracy"]], rec["history"], dtype="float32", context=rec["run_id"])
    for s in rec["accuracy"]:
        tag = f"test/accuracy_N{s['seq_len']}_D{s['num_kv_pairs']}"
        assert_close(history[tag][-1][1], s["accuracy"], dtype="float32", context=f"{rec['run_id']} {tag}")
    mean = sum(s["accuracy"] for s in rec["accuracy"]) / len(rec["accuracy"])
    assert_close(history["test/slice_mean_accuracy"][-1][1], mean, dtype="float32", context=rec["run_id"])


def test_tensorboard_event_files_hold_each_runs_loss_and_accuracy(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, records = tracked
    for rec in records:
        events = EventAccumulator(str(folder / "tb" / rec["run_id"]))
        events.Reload()
        history = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
        _assert_history_matches_record(history, rec)
        assert len(history) == 3 + len(rec["accuracy"])  # loss, accuracy, slice mean, one per slice


def _wandb_records(path: Path):
    """The protobuf records of an offline wandb run file (``run-*.wandb``: LevelDB's log format, 32 KiB blocks of
    chunks with a 7-byte header ``crc32, length, type``; type 1 a whole record, 2/3/4 its first/middle/last part)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, buffer, block = 7, b"", 32768
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += room
            continue
        buffer += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            buffer = b""
            yield record


def test_wandb_offline_runs_hold_each_runs_loss_and_accuracy(tracked):
    folder, records = tracked
    runs = {}
    for file in (folder / "wb" / "wandb").glob("offline-run-*/run-*.wandb"):
        name, config, history = None, {}, {}
        for record in _wandb_records(file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                name, group, project = record.run.display_name, record.run.run_group, record.run.project
                config = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.run.config.update
                }
            elif kind == "history":
                for item in record.history.item:
                    tag = item.key or "/".join(item.nested_key)
                    if not tag.startswith("_"):  # wandb's own (_step, _runtime, _timestamp)
                        history.setdefault(tag, []).append((record.history.step.num, json.loads(item.value_json)))
        assert group == "tiny" and project == "mqarkit-test"
        runs[name] = (config, history)
    assert sorted(runs) == sorted(r["run_id"] for r in records)  # one wandb run per training run
    for rec in records:
        config, history = runs[rec["run_id"]]
        assert config["lr"] == rec["lr"] and config["model"] == rec["model"] and config["run_id"] == rec["run_id"]
        _assert_history_matches_record(history, rec)


def test_tracking_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="log='mlflow': unknown tracker; choose from tensorboard, wandb"):
        Tracking("mlflow", str(tmp_path)).validate()
    with pytest.raises(ValueError, match="log_dir="):
        Tracking("tensorboard", str(blocker / "logs")).validate()
    assert default_log_dir(tmp_path / "results.jsonl") == tmp_path / "results.logs"


def test_no_tracker_or_ray_is_imported_unless_asked(tmp_path):
    code = (
        "import sys\n"
        "from mqarkit.gpu.frontier import get_preset, run_sweeps\n"
        "import mqarkit.gpu.frontier.cli\n"
        f"run_sweeps(get_preset('tiny', epochs=1, families=('attention',)), {str(tmp_path / 'r.jsonl')!r}, 'cpu',"
        " log=lambda s: None)\n"
        "print(sorted(m for m in ('tensorboard', 'torch.utils.tensorboard', 'wandb', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_cli_log_tensorboard_writes_beside_the_results_and_log_dir_needs_log(tmp_path, capsys):
    from mqarkit.gpu.frontier.cli import main

    out = tmp_path / "r.jsonl"
    base = ["run", "--preset", "tiny", "--epochs", "1", "--families", "attention", "--out", str(out), "--device", "cpu"]
    assert main([*base, "--log-dir", str(tmp_path / "x")]) == 2
    assert "--log-dir: only with --log" in capsys.readouterr().err
    assert main([*base, "--log", "tensorboard"]) == 0
    folders = sorted(
        p.parent.relative_to(tmp_path / "r.logs").as_posix() for p in (tmp_path / "r.logs").rglob("events.*")
    )
    assert folders == sorted(r["run_id"] for r in read_records(out))
