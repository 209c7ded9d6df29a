"""Sweep files (TOML): what they expand to, and every rule checked before any work, named by file, entry and rule."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mqarkit.gpu.frontier.presets import get_preset, load_preset, preset_names, reduce
from mqarkit.gpu.frontier.sweep_file import SweepFileError, load_sweep_file, parse_sweeps

BASE = """
name = "s"
vocab_size = 64
epochs = 2
lrs = [0.003, 0.01]
batch_size = 16
test_batch_size = 16
train = [{ seq_len = 16, num_kv_pairs = 2, num_examples = 64 }]
test = [{ seq_len = 32, num_kv_pairs = 4, num_examples = 16 }]
"""
BASED = '[[models]]\nfamily = "based"\nd_model = [16, 32]\nfeature_dim = [4, 8, 12]\n'


def test_lists_expand_to_every_combination_and_max_len_defaults_to_the_longest_sequence():
    (sweep,) = parse_sweeps(BASE + BASED)
    assert [(m.d_model, m.knob_dict()["feature_dim"]) for m in sweep.models] == [
        (d, f) for d in (16, 32) for f in (4, 8, 12)
    ]
    assert {m.max_len for m in sweep.models} == {32} and sweep.seeds == (0,) and sweep.data_seed == 0
    assert len(sweep.runs()) == 6 * 2


def test_seeds_give_one_run_per_seed():
    (sweep,) = parse_sweeps(BASE.replace("epochs = 2", "epochs = 2\nseeds = [0, 7, 9]") + BASED)
    assert len(sweep.runs()) == 6 * 2 * 3
    assert {r.run_id.rsplit("-s", 1)[1] for r in sweep.runs()} == {"0", "7", "9"}
    assert len({r.init_seed() for r in sweep.runs()}) == len(sweep.runs())


def test_several_sweeps_share_the_top_level_fields():
    text = BASE.replace('name = "s"\n', "").split("train =")[0] + BASED
    text += '[[sweeps]]\nname = "a"\ntrain = [{ seq_len = 16, num_kv_pairs = 2, num_examples = 8 }]\n'
    text += "test = [{ seq_len = 16, num_kv_pairs = 2, num_examples = 8 }]\n"
    text += '[[sweeps]]\nname = "b"\nepochs = 5\ntrain = [{ seq_len = 48, num_kv_pairs = 4, num_examples = 8 }]\n'
    text += "test = [{ seq_len = 48, num_kv_pairs = 8, num_examples = 8 }]\n"
    a, b = parse_sweeps(text)
    assert (a.name, a.epochs, b.name, b.epochs) == ("a", 2, "b", 5)
    assert {m.max_len for m in a.models} == {16} and {m.max_len for m in b.models} == {48}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("epochs = 2", "epoch = 2") + BASED, r"f\.toml: unknown field 'epoch'"),
        (BASE.replace('name = "s"\n', "") + BASED, r"f\.toml: name: missing"),
        (
            BASE.replace("epochs = 2", "epochs = 0") + BASED,
            r"f\.toml: sweep 's': epochs=0: needs an integer epochs >= 1",
        ),
        (BASE.replace("epochs = 2", 'epochs = "2"') + BASED, r"epochs='2': needs an integer"),
        (BASE.replace("lrs = [0.003, 0.01]", "lrs = [0.003, -1]") + BASED, r"lrs=\[0\.003, -1\]"),
        (BASE.replace("lrs = [0.003, 0.01]", "lrs = 0.003") + BASED, r"lrs=0\.003: needs a list"),
        (BASE.replace("epochs = 2", "epochs = 2\nseeds = [1, 1]") + BASED, r"seeds=\[1, 1\]: .*distinct"),
        (BASE.replace("num_kv_pairs = 4", "num_kv_pairs = 9") + BASED, r"test\[0\]: num_kv_pairs=9"),
        (BASE.replace("num_examples = 64", "num_example = 64") + BASED, r"train\[0\]: unknown field 'num_example'"),
        (BASE.replace("seq_len = 16,", "seq_len = 16.0,") + BASED, r"train\[0\]: seq_len=16\.0: needs an integer"),
        (
            BASE + BASED.replace("feature_dim = [4, 8, 12]", "feature_dim = [4, 0]"),
            r"models\[0\] \(based\): feature_dim=0",
        ),
        (BASE + BASED.replace('"based"', '"basde"'), r"models\[0\] \(basde\): family='basde': unknown"),
        (BASE + BASED.replace("d_model = [16, 32]\n", ""), r"models\[0\]: d_model: missing"),
        (BASE + BASED.replace("d_model = [16, 32]", "d_model = []"), r"d_model=\[\]: needs at least one value"),
        (BASE + BASED + "window = 4\n", r"models\[0\] \(based\): window=4: family 'based' takes feature_dim"),
        (BASE + "[[models]]\nd_model = 16\n", r"models\[0\]: needs family = '<name>' or mixer"),
        (BASE + '[[models]]\nfamily = "based"\nmixer = "a:B"\nd_model = 16\n', "not both"),
        (BASE + '[[models]]\nfamily = "attention"\nmixer_kwargs = {}\nd_model = 16\n', "only a plain module"),
        (BASE + '[[models]]\nmixer = "torch.nn:Linear"\nd_model = 16\nwidth = 3\n', "takes mixer_kwargs, not knobs"),
        (BASE + '[[models]]\nfamily = "attention"\nd_model = 16\nmax_len = 8\n', r"max_len=8: needs max_len >= .* 32"),
        (
            BASE + '[[models]]\nfamily = "attention"\nd_model = 16\n[[models]]\nfamily = "attention"\nd_model = 16\n',
            "twice",
        ),
        (BASE + BASED + "nonsense", r"f\.toml: not valid TOML"),
        (BASE + "models = []", r"models: needs one or more"),
    ],
)
def test_every_rule_names_file_entry_and_rule(tmp_path, text, message):
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(SweepFileError, match=message):
        load_sweep_file(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SweepFileError, match=r"nope\.toml: cannot read the sweep file"):
        load_sweep_file(tmp_path / "nope.toml")


def test_presets_ship_as_sweep_files_with_the_papers_sizes():
    assert preset_names() == ["based-fig2", "based-slice", "modern", "tiny", "zoology-fig2"]
    (fig2,) = load_preset("based-fig2")
    assert len(fig2.runs()) == (2 + 9 + 8 + 9 + 3 + 3) * 4 and fig2.epochs == 32 and len(fig2.lrs) == 4
    assert {m.family for m in fig2.models} == {"attention", "based", "sliding_window", "mamba", "hyena", "h3"}
    assert {(m.d_model, m.knob_dict()["d_state"]) for m in fig2.models if m.family == "h3"} == {
        (64, 16),
        (128, 32),
        (256, 64),
    }
    assert {m.max_len for m in fig2.models} == {1024}
    (slice_,) = load_preset("based-slice")
    assert {r.run_id for r in slice_.runs()} == {
        r.run_id.replace("based-fig2", "based-slice") for r in fig2.runs() if r.model.family == "based"
    }
    zoology = load_preset("zoology-fig2")
    assert [s.name for s in zoology] == [f"zoology-fig2-N{n}" for n in (64, 128, 256, 512)]
    assert [{m.max_len for m in s.models} for s in zoology] == [{64}, {128}, {256}, {512}]
    assert [s.batch_size for s in zoology] == [512, 512, 256, 128]
    assert all(s.lrs == pytest.approx((1e-4, 10**-3.333333, 10**-2.666667, 1e-2)) for s in zoology)
    for s, n in zip(zoology, (64, 128, 256, 512)):
        assert {m.family for m in s.models} == {"attention", "long_conv", "hyena", "rwkv4", "based", "mamba", "h3"}
        assert {m.knob_dict()["d_state"] for m in s.models if m.family == "h3"} == {n}


def test_reductions_are_recorded_and_checked():
    (sweep,) = get_preset("tiny", epochs=1, lrs=(0.01,), families=("based",), seeds=(3, 4), data_seed=5)
    assert sweep.notes == (
        "epochs 2 -> 1",
        "lrs [0.003, 0.01] -> [0.01]",
        "families ['based']",
        "seeds [0] -> [3, 4]",
        "data_seed 0 -> 5",
    )
    assert {r.seed for r in sweep.runs()} == {3, 4} and sweep.data_seed == 5
    with pytest.raises(ValueError, match="preset='nope': unknown"):
        get_preset("nope")
    with pytest.raises(ValueError, match=r"families=\['rnn'\]"):
        get_preset("tiny", families=("rnn",))
    with pytest.raises(ValueError, match="example_scale=0"):
        reduce(load_preset("tiny"), example_scale=0)
    # a filter that leaves one sweep of several without models drops that sweep only
    assert [s.name for s in get_preset("zoology-fig2", d_models=(64,))] == [
        f"zoology-fig2-N{n}" for n in (64, 128, 256, 512)
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "tiny", "--epochs", "0"], "epochs=0"),
        (["--sweep", "/nonexistent/x.toml"], "cannot read the sweep file"),
        (["--preset", "tiny", "--families", "rnn"], "families="),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, args, message):
    cmd = [sys.executable, "-m", "mqarkit.cli", "frontier", "run", *args, "--out", str(tmp_path / "o.jsonl")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.jsonl").exists()
