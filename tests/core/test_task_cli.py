"""`mqarkit task sample` through the top-level dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from mqarkit.cli import main
from mqarkit.task import MQARSpec, generate


def test_sample_prints_the_instance_with_highlights_and_legend(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["task", "sample", "--vocab-size", "97", "--seq-len", "40", "--num-kv-pairs", "5", "--seed", "3",
            "--filler", "clean", "--num-passes", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    batch = generate(MQARSpec(97, 40, 5, filler="clean", num_passes=2), 1, np.random.default_rng(3))
    assert "c=97 N=40 D=5 passes=2 filler=clean" in out
    assert "legend:" in out and "?query" in out and "filler" in out
    for j in range(5):
        key, value, q = int(batch.keys[0, j]), int(batch.values[0, j]), int(batch.query_positions[0, j])
        assert f"?{key:>2}" in out  # the query token is marked
        assert f"pos {q} -> {value}" in out  # and its expected answer listed
    assert out.count("?") >= 5


def test_sample_defaults_and_several_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["task", "sample", "--num-examples", "2", "--filler", "random"]) == 0
    out = capsys.readouterr().out
    assert "example 0: key-value pairs" in out and "example 1: key-value pairs" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seq-len", "31"], "seq_len=31"),
        (["--vocab-size", "20"], "vocab_size=20"),
        (["--num-kv-pairs", "9"], "num_kv_pairs=9"),
        (["--power-a", "0"], "power_a=0.0"),
        (["--num-examples", "0"], "num_examples=0"),
        (["--seed", "-1"], "seed=-1"),
        (["--filler", "ones"], "invalid choice"),
        (["--seq-len", "abc"], "invalid int value"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str, capsys) -> None:
    assert main(["task", "sample", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "error" in captured.err
    assert "Traceback" not in captured.err


def test_missing_subcommand_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["task"]) == 2
    assert "sample" in capsys.readouterr().out
    assert main(["task", "sample", "--help"]) == 0
    assert "--num-kv-pairs" in capsys.readouterr().out
