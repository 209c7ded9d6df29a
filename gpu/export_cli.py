"""``mqarkit export zoology``: a construction as a reference-format checkpoint that recalls without training.

    mqarkit export zoology --construction attention_signcode --vocab-size 8192 --seq-len 1024 --num-kv-pairs 256 \\
        --out ckpt/

writes ``DIR/config.json`` (the keyword arguments of the reference ``zoology.config.ModelConfig``, nested mixer
configs included: ``LanguageModel(ModelConfig(**json.load(...)))``), ``DIR/model.pt`` (``torch.save`` of the
``state_dict`` under the reference's exact keys, float32 as the reference's parameters) and ``DIR/report.json``:
the layer mapping, the width used, the state (the reference's own count and ours measured from the recurrent
modes), and the accuracy on unambiguous queries measured in our reference-layout model
(:mod:`mqarkit.gpu.reference_model`, float64) on the reference generator's data, with zero filler
(``random_non_queries=False``) and with random filler (the generator's default). Constructions: see
:mod:`mqarkit.gpu.reference_export` (``attention_signcode``, ``sliding_window`` with ``--window``, ``based_taylor``);
any other names the reason it cannot be exported. Bad arguments (and an output folder that cannot be written) print
one line, ``mqarkit export zoology: error: ...``, and exit with status 2, before any work (:mod:`mqarkit.cli`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mqarkit.cli import CommandParser, parse_command, reports_usage_errors
from mqarkit.errors import usage_errors
from mqarkit.gpu.reference_eval import evaluate_reference
from mqarkit.gpu.reference_export import ReferenceExport, export_reference
from mqarkit.gpu.reference_model import (
    load_reference_model,
    measured_state_numbers,
    state_size_reported,
)
from mqarkit.outputs import check_output_folder

REFERENCE_COMMIT = "d88d6f5474f36998d82d5c3bd58a190248d0a669"  # the zoology commit of ../shared/golden


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="mqarkit export", description="Export constructions as checkpoints of other codebases.")
    sub = parser.add_subparsers(dest="target", metavar="<target>")
    zoo = sub.add_parser("zoology", help="a reference (HazyResearch/zoology) LanguageModel checkpoint")
    zoo.add_argument("--construction", required=True, help="attention_signcode, sliding_window or based_taylor")
    zoo.add_argument("--vocab-size", type=int, required=True, help="c: vocabulary size (> seq-len)")
    zoo.add_argument("--seq-len", type=int, required=True, help="N: the longest sequence the checkpoint must serve")
    zoo.add_argument("--num-kv-pairs", type=int, required=True, help="D: key-value pairs of the measured data")
    zoo.add_argument("--d-model", type=int, default=None, help="width (default: the paper's, 64 / 128 / 64)")
    zoo.add_argument("--window", type=int, default=None, help="w: keys a query sees (sliding_window only)")
    zoo.add_argument("--feature-dim", type=int, default=None, help="d': Based's feature dim (based_taylor; 16)")
    zoo.add_argument("--num-examples", type=int, default=256, help="examples of the measured data (default 256)")
    zoo.add_argument("--seed", type=int, default=0, help="the reference generator's seed (default 0)")
    zoo.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    return parser


def export_report(exported: ReferenceExport, *, num_kv_pairs: int, num_examples: int, seed: int) -> dict:
    """``report.json``'s content: the layer mapping, width, state, and accuracies measured in our model."""
    config = exported.config
    model = load_reference_model(config, exported.state)
    seq_len = config["sequence_mixer"]["kwargs"]["configs"][0]["kwargs"]["l_max"]
    scores = [
        evaluate_reference(
            model,
            vocab_size=config["vocab_size"],
            seq_len=seq_len,
            num_kv_pairs=num_kv_pairs,
            num_examples=num_examples,
            seed=seed,
            random_non_queries=random_filler,
            window=exported.info.get("window"),
        ).as_dict()
        for random_filler in (False, True)
    ]
    report = {
        "construction": exported.info["construction"],
        "claim": exported.info["claim"],
        "reference": {"repository": "HazyResearch/zoology", "commit": REFERENCE_COMMIT},
        "vocab_size": config["vocab_size"],
        "seq_len": seq_len,
        "num_kv_pairs": num_kv_pairs,
        "d_model": config["d_model"],
        "width_used": exported.info["channels_used"],
        "layer_mapping": exported.info["layers"],
        "knobs": {k: v for k, v in exported.info.items() if k not in ("layers", "construction", "claim")},
        "state": {
            "numbers_measured": measured_state_numbers(model, seq_len),
            "bytes_measured_float32": 4 * measured_state_numbers(model, seq_len),
            "bytes_reported_by_reference": state_size_reported(model, seq_len),
            "policy": "numbers carried by the mixers' recurrent modes (mqarkit.gpu.state); the reference's own count "
            "is LanguageModel.state_size(seq_len)",
        },
        "accuracy_measured_in": "mqarkit.gpu.reference_model (float64), data: mqarkit.zoology.zoology_mqar_batch",
        "accuracy": scores,
    }
    if exported.info["construction"] == "based_taylor":
        from mqarkit.constructions.based_taylor import predicted_recall

        report["capacity_law"] = {
            "based_taylor.predicted_recall(c, D)": predicted_recall(config["vocab_size"], num_kv_pairs),
            "note": "based_taylor's regime-B law (its own sign codes, CLT approximation), for comparison",
        }
    return report


def write_export(exported: ReferenceExport, out: Path, report: dict) -> list[Path]:
    """Write ``config.json``, ``model.pt`` (float32) and ``report.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "config.json", out / "model.pt", out / "report.json"]
    paths[0].write_text(json.dumps(exported.config, indent=2) + "\n")
    torch.save({k: v.to(torch.float32).contiguous() for k, v in exported.state.items()}, paths[1])
    paths[2].write_text(json.dumps(report, indent=2) + "\n")
    return paths


def _check_args(args: argparse.Namespace) -> None:
    if args.num_examples < 1:
        raise ValueError(f"num_examples={args.num_examples}: must be >= 1")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"seed={args.seed}: must be in [0, 2**32)")


@reports_usage_errors("mqarkit export zoology")
def main(argv: list[str] | None = None) -> int:
    args, status = parse_command(build_parser(), argv, "target")
    if args is None:
        return status
    with usage_errors():  # every refusal below is the user's input: one line, exit 2
        _check_args(args)
        out = check_output_folder(args.out, parameter="--out")  # before any work
        exported = export_reference(
            args.construction,
            vocab_size=args.vocab_size,
            seq_len=args.seq_len,
            num_kv_pairs=args.num_kv_pairs,
            d_model=args.d_model,
            window=args.window,
            feature_dim=args.feature_dim,
        )
    report = export_report(exported, num_kv_pairs=args.num_kv_pairs, num_examples=args.num_examples, seed=args.seed)
    paths = write_export(exported, out, report)
    for score in report["accuracy"]:
        filler = "random filler" if score["random_non_queries"] else "zero filler"
        print(
            f"{report['construction']} N={score['seq_len']} D={score['num_kv_pairs']} ({filler}): "
            f"{score['accuracy_unambiguous']:.4f} of {score['num_queries'] - score['num_ambiguous']} "
            "unambiguous queries"
        )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
