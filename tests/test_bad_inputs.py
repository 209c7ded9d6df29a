"""Bad inputs through the Python API and the CLI: each row asserts its outcome class (harness: ``bad_inputs.py``).

Every public function refuses a bad argument with the exception class of its row and a message naming the parameter;
sizes whose memory need exceeds the machine are refused up front (``TooLargeError``, with the estimate) instead of
failing late or being killed; every CLI command prints one line and exits 2. Frontier and plot rows belong to those
commands' own tables (``tests/frontier/``), built with the same harness.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_inputs import ApiCase, CliCase, api_params, assert_api_refuses, assert_cli_refuses, cli_params

from mqarkit import information, oracle, sampling, triples
from mqarkit.constructions import build, check_construction, claimed_resources, construction_class
from mqarkit.errors import TooLargeError
from mqarkit.gpu.device import resolve_device, resolve_dtype
from mqarkit.gpu.export import export_state_dict, fit_report
from mqarkit.gpu.golden import load_contract, load_golden_arrays
from mqarkit.gpu.loaders import load
from mqarkit.gpu.mixers import BaseConv, BasedLinearAttention, SelectiveSSM, SlidingWindowAttention, SoftmaxAttention
from mqarkit.gpu.report import parse_dtypes
from mqarkit.gpu.state import count_state_numbers
from mqarkit.polynomials import (
    ArgmaxReadout,
    BinaryCode,
    CausalConv,
    CircuitBuilder,
    CyclicConv,
    IdentityMap,
    Layer,
    Linear,
    LinearAttention,
    Model,
    OneHot,
    PHot,
    SignCode,
    Stream,
    TaylorMap,
    UnnormalisedAttention,
    analyse,
    compile_to_baseconv,
    embed,
    evaluate,
    generic_input,
    output_degree,
    random_circuit,
    read,
)
from mqarkit.polynomials import BaseConv as IRBaseConv
from mqarkit.polynomials import (
    SoftmaxAttention as IRSoftmaxAttention,
)
from mqarkit.polynomials.weights import NotExactError
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close, dtype_name
from mqarkit.zoology import zoology_mqar, zoology_mqar_batch

V, T = ValueError, TypeError
RNG = np.random.default_rng(0)
SPEC = MQARSpec(64, 32, 4)
BATCH = generate(SPEC, 2, RNG)
PRED = np.zeros((2, 32), dtype=np.int64)
INTS = np.ones((2, 3), dtype=np.int64)
EYE = np.eye(2)
MODEL = Model.sequential([Linear(np.eye(2))], 2)
ZOO = {"vocab_size": 64, "num_examples": 2, "input_seq_len": 32, "seed": 0, "num_kv_pairs": 4}
SIZES = {"vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4}
BASECONV_SIZES = {"vocab_size": 65, "seq_len": 64, "num_kv_pairs": 4}
HUGE_ROWS = np.broadcast_to(np.zeros((1, 32), dtype=np.int64), (10**9, 32))  # a view: no memory behind it


def spec(**changes: object) -> MQARSpec:
    return MQARSpec(**{"vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4, **changes})


def zoo(**changes: object) -> object:
    return zoology_mqar(**{**ZOO, **changes})


def con(name: str = "attention_onehot", **changes: object) -> object:
    return build(name, **{**SIZES, **changes})


def circuit() -> object:
    b = CircuitBuilder()
    return b.build([b.mul(b.input(0), b.input(1))])


def mixer() -> SoftmaxAttention:
    return SoftmaxAttention(4)


C = ApiCase
CORE = [
    # MQARSpec
    C("spec-vocab-bool", V, "vocab_size", lambda: spec(vocab_size=True)),
    C("spec-vocab-float", V, "vocab_size", lambda: spec(vocab_size=64.0)),
    C("spec-vocab-str", V, "vocab_size", lambda: spec(vocab_size="64")),
    C("spec-vocab-none", V, "vocab_size", lambda: spec(vocab_size=None)),
    C("spec-vocab-zero", V, "vocab_size", lambda: spec(vocab_size=0)),
    C("spec-vocab-int64-overflow", V, "vocab_size", lambda: spec(vocab_size=2**63)),
    C("spec-vocab-1e30", V, "vocab_size", lambda: spec(vocab_size=10**30)),
    C("spec-vocab-not-above-seq-len", V, "vocab_size", lambda: spec(vocab_size=32)),
    C("spec-vocab-too-few-keys", V, "vocab_size", lambda: MQARSpec(5, 8, 2)),
    C("spec-seq-len-odd", V, "seq_len", lambda: spec(seq_len=31)),
    C("spec-seq-len-negative", V, "seq_len", lambda: spec(seq_len=-2)),
    C("spec-seq-len-numpy-float", V, "seq_len", lambda: spec(seq_len=np.float64(32))),
    C("spec-pairs-zero", V, "num_kv_pairs", lambda: spec(num_kv_pairs=0)),
    C("spec-pairs-too-many", V, "num_kv_pairs", lambda: spec(num_kv_pairs=9)),
    C("spec-pairs-list", V, "num_kv_pairs", lambda: spec(num_kv_pairs=[4])),
    C("spec-passes-zero", V, "num_passes", lambda: spec(num_passes=0)),
    C("spec-passes-float", V, "num_passes", lambda: spec(num_passes=2.0)),
    C("spec-passes-do-not-fit", V, "num_kv_pairs", lambda: spec(num_passes=4)),
    C("spec-power-zero", V, "power_a", lambda: spec(power_a=0.0)),
    C("spec-power-negative", V, "power_a", lambda: spec(power_a=-1)),
    C("spec-power-nan", V, "power_a", lambda: spec(power_a=float("nan"))),
    C("spec-power-inf", V, "power_a", lambda: spec(power_a=float("inf"))),
    C("spec-power-1e308", V, "power_a", lambda: spec(power_a=1e308)),
    C("spec-power-subnormal", V, "power_a", lambda: spec(power_a=1e-320)),
    C("spec-power-str", V, "power_a", lambda: spec(power_a="0.5")),
    C("spec-power-none", V, "power_a", lambda: spec(power_a=None)),
    C("spec-power-bool", V, "power_a", lambda: spec(power_a=True)),
    C("spec-filler-unknown", V, "filler", lambda: spec(filler="ones")),
    C("spec-filler-none", V, "filler", lambda: spec(filler=None)),
    C("spec-filler-list", V, "filler", lambda: spec(filler=["zero"])),
    C("spec-filler-case", V, "filler", lambda: spec(filler="ZERO")),
    # generate
    C("generate-spec-none", T, "spec", lambda: generate(None, 2, RNG)),
    C("generate-spec-dict", T, "spec", lambda: generate(dict(SIZES), 2, RNG)),
    C("generate-n-zero", V, "num_examples", lambda: generate(SPEC, 0, RNG)),
    C("generate-n-negative", V, "num_examples", lambda: generate(SPEC, -1, RNG)),
    C("generate-n-float", T, "num_examples", lambda: generate(SPEC, 2.0, RNG)),
    C("generate-n-bool", T, "num_examples", lambda: generate(SPEC, True, RNG)),
    C("generate-n-none", T, "num_examples", lambda: generate(SPEC, None, RNG)),
    C("generate-n-memory", TooLargeError, "num_examples=1000000000000", lambda: generate(SPEC, 10**12, RNG)),
    C(
        "generate-long-memory",
        TooLargeError,
        "num_examples=100",
        lambda: generate(MQARSpec(10**9 + 1, 10**9, 4), 100, RNG),
    ),
    C("generate-n-int64-lookup", V, "num_examples", lambda: generate(spec(vocab_size=2**62), 8, RNG)),
    C("generate-rng-int", T, "rng", lambda: generate(SPEC, 2, 0)),
    C("generate-rng-legacy", T, "rng", lambda: generate(SPEC, 2, np.random.RandomState(0))),
    C("generate-rng-none", T, "rng", lambda: generate(SPEC, 2, None)),
    # zoology
    C("zoology-rnq-str", V, "random_non_queries", lambda: zoo(random_non_queries="no")),
    C("zoology-rnq-none", V, "random_non_queries", lambda: zoo(random_non_queries=None)),
    C("zoology-rnq-int", V, "random_non_queries", lambda: zoo(random_non_queries=1)),
    C("zoology-rnq-true-str", V, "random_non_queries", lambda: zoo(random_non_queries="True")),
    C("zoology-batch-rnq-str", V, "random_non_queries", lambda: zoology_mqar_batch(**ZOO, random_non_queries="y")),
    C("zoology-seed-negative", V, "seed", lambda: zoo(seed=-1)),
    C("zoology-seed-2-32", V, "seed", lambda: zoo(seed=2**32)),
    C("zoology-seed-float", V, "seed", lambda: zoo(seed=1.5)),
    C("zoology-seed-none", V, "seed", lambda: zoo(seed=None)),
    C("zoology-n-zero", V, "num_examples", lambda: zoo(num_examples=0)),
    C("zoology-n-memory", TooLargeError, "num_examples", lambda: zoo(num_examples=10**12)),
    C("zoology-seq-len-odd", V, "input_seq_len=33", lambda: zoo(input_seq_len=33)),
    C("zoology-pairs-do-not-fit", V, "num_kv_pairs", lambda: zoo(input_seq_len=8)),
    C("zoology-vocab-small", V, "vocab_size", lambda: zoo(vocab_size=16)),
    C("zoology-power-negative", V, "power_a", lambda: zoo(power_a=-1.0)),
    C("zoology-pairs-zero", V, "num_kv_pairs", lambda: zoo(num_kv_pairs=0)),
    # oracle
    C("answers-batch-none", T, "batch", lambda: oracle.expected_answers(None)),
    C("answers-batch-array", T, "batch", lambda: oracle.expected_answers(PRED)),
    C("ambiguous-batch-str", T, "batch", lambda: oracle.ambiguous_queries("x")),
    C("filler-mask-batch-int", T, "batch", lambda: oracle.filler_mask(3)),
    C("score-shape", V, "predictions", lambda: oracle.score(np.zeros((2, 31), dtype=np.int64), BATCH)),
    C("score-float", V, "predictions", lambda: oracle.score(np.zeros((2, 32)), BATCH)),
    C("score-none", V, "predictions", lambda: oracle.score(None, BATCH)),
    C("score-str", V, "predictions", lambda: oracle.score("abc", BATCH)),
    C("score-batch-none", T, "batch", lambda: oracle.score(PRED, None)),
    C("score-many-not-lists", T, "batches", lambda: oracle.score_many([PRED], BATCH)),
    C("score-many-none", T, "predictions", lambda: oracle.score_many(None, None)),
    C("score-many-empty", V, "batches", lambda: oracle.score_many([], [])),
    C("score-many-count", V, "predictions", lambda: oracle.score_many([PRED], [BATCH, BATCH])),
    C("score-many-batch-none", T, "batches[0]", lambda: oracle.score_many([PRED], [None])),
    C("raw-recall-float", V, "inputs", lambda: oracle.raw_recall_targets(np.zeros((2, 3)))),
    C("raw-recall-none", V, "inputs", lambda: oracle.raw_recall_targets(None)),
    C("raw-recall-1d", V, "inputs", lambda: oracle.raw_recall_targets(np.zeros(3, dtype=np.int64))),
    C("raw-recall-chunk-zero", V, "max_chunk_bytes", lambda: oracle.raw_recall_targets(INTS, max_chunk_bytes=0)),
    C("raw-recall-chunk-float", V, "max_chunk_bytes", lambda: oracle.raw_recall_targets(INTS, max_chunk_bytes=1.5)),
    C("raw-recall-memory", TooLargeError, "inputs.shape", lambda: oracle.raw_recall_targets(HUGE_ROWS.T)),
    # sampling
    C("distinct-k-above-population", V, "k", lambda: sampling.sample_distinct(RNG, 5, 2, 6)),
    C("distinct-rows-negative", V, "num_rows", lambda: sampling.sample_distinct(RNG, 5, -2, 2)),
    C("distinct-population-negative", V, "population", lambda: sampling.sample_distinct(RNG, -1, 2, 0)),
    C("distinct-k-float", V, "k", lambda: sampling.sample_distinct(RNG, 5, 2, 2.0)),
    C("weighted-negative-weight", V, "weights", lambda: sampling.sample_weighted_distinct(RNG, [1, -1], 2, 1)),
    C("weighted-rows-negative", V, "num_rows", lambda: sampling.sample_weighted_distinct(RNG, [1, 1], -1, 1)),
    C("weighted-k-above-size", V, "k", lambda: sampling.sample_weighted_distinct(RNG, [1, 1], 2, 3)),
    C("excluding-all-excluded", V, "excluded", lambda: sampling.sample_excluding(RNG, np.zeros((2, 3), int), 2, 3)),
    C("excluding-none", V, "excluded", lambda: sampling.sample_excluding(RNG, None, 10, 3)),
    C("excluding-k-negative", V, "k", lambda: sampling.sample_excluding(RNG, np.zeros((2, 1), int), 10, -1)),
    # triples
    C("offset-delta-zero", V, "delta", lambda: triples.key_to_query_offset(0)),
    C("offset-delta-str", V, "delta", lambda: triples.key_to_query_offset("a")),
    C("value-offset-delta-float", V, "delta", lambda: triples.value_to_query_offset(1.5)),
    C("triples-n-zero", V, "num_examples", lambda: triples.generate_triples(0, 3, 64, RNG)),
    C("triples-m-zero", V, "num_triples", lambda: triples.generate_triples(2, 0, 64, RNG)),
    C("triples-vocab-small", V, "vocab_size", lambda: triples.generate_triples(2, 3, 4, RNG)),
    C("triples-hit-rate-two", V, "hit_rate", lambda: triples.generate_triples(2, 3, 64, RNG, hit_rate=2)),
    C("triples-hit-rate-nan", V, "hit_rate", lambda: triples.generate_triples(2, 3, 64, RNG, hit_rate=float("nan"))),
    C("triples-hit-rate-str", V, "hit_rate", lambda: triples.generate_triples(2, 3, 64, RNG, hit_rate="0.5")),
    C("triples-rng-none", T, "rng", lambda: triples.generate_triples(2, 3, 64, None)),
    C("triples-memory", TooLargeError, "num_examples", lambda: triples.generate_triples(10**12, 3, 64, RNG)),
    C("answers-1d", V, "keys", lambda: triples.triple_answers([1, 2], [3, 4], [5, 6])),
    C("answers-none", V, "keys", lambda: triples.triple_answers(None, None, None)),
    C("answers-shapes", V, "values", lambda: triples.triple_answers(INTS, np.ones((2, 4), int), INTS)),
    C("answers-inconsistent", V, "keys", lambda: triples.triple_answers([[1, 1]], [[2, 3]], [[5, 1]])),
    C("raw-to-triples-length", V, "raw", lambda: triples.raw_to_triples(np.zeros((2, 4), dtype=np.int64))),
    C("ar-answer-query-shape", V, "query", lambda: triples.ar_answer(INTS, INTS, np.ones(3, dtype=np.int64))),
    C("ar-to-raw-query-float", V, "query", lambda: triples.ar_to_raw(INTS, INTS, np.ones(2))),
    C("ar-keys-zero", V, "num_keys", lambda: triples.generate_ar(2, 0, 64, RNG)),
    C("ar-no-miss-token", V, "vocab_size", lambda: triples.generate_ar(2, 31, 64, RNG)),
    # information
    C("falling-k-above-n", V, "k", lambda: information.log2_falling_factorial(3, 5)),
    C("falling-n-negative", V, "n", lambda: information.log2_falling_factorial(-3, 1)),
    C("falling-n-float", V, "n", lambda: information.log2_falling_factorial(3.0, 1)),
    C("entropy-above-one", V, "p", lambda: information.binary_entropy(1.5)),
    C("entropy-nan", V, "p", lambda: information.binary_entropy(float("nan"))),
    C("entropy-str", V, "p", lambda: information.binary_entropy("a")),
    C("fano-bits-nan", V, "state_bits", lambda: information.fano_min_error(float("nan"), 2, 4)),
    C("fano-bits-negative", V, "state_bits", lambda: information.fano_min_error(-1, 2, 4)),
    C("fano-pairs-float", V, "num_pairs", lambda: information.fano_min_error(1.0, 2.5, 4)),
    C("fano-values-huge", V, "num_values", lambda: information.fano_min_error(1.0, 2, 10**400)),
    C("fano-values-one", V, "num_values", lambda: information.fano_min_error(1.0, 2, 1)),
    C("fano-pairs-above-values", V, "num_pairs", lambda: information.fano_min_error(1.0, 5, 4)),
    C("fano-accuracy-pairs-zero", V, "num_pairs", lambda: information.fano_max_accuracy(1.0, 0, 4)),
    C("minimum-bits-pairs-above", V, "num_pairs", lambda: information.information_minimum_bits(5, 4)),
    C("minimum-bits-values-str", V, "num_values", lambda: information.information_minimum_bits(2, "8")),
    # tolerances
    C("assert-close-dtype-int", V, "dtype", lambda: assert_close(1.0, 1.0, dtype="int8")),
    C("dtype-name-unknown", V, "dtype", lambda: dtype_name("float128")),
]

POLYNOMIALS = [
    C("onehot-vocab-zero", V, "vocab_size", lambda: OneHot(0)),
    C("onehot-vocab-float", V, "vocab_size", lambda: OneHot(2.5)),
    C("onehot-codebook-memory", TooLargeError, "OneHot.vocab_size", lambda: OneHot(10**12).codebook()),
    C("onehot-encode-float", V, "tokens", lambda: OneHot(8).encode([1.5])),
    C("onehot-encode-range", V, "tokens", lambda: OneHot(8).encode([9])),
    C("onehot-encode-memory", TooLargeError, "tokens.size", lambda: OneHot(10**7).encode(np.zeros(10**7, int))),
    C("onehot-decode-width", V, "vectors", lambda: OneHot(8).decode(np.zeros((2, 3)))),
    C("binary-vocab-negative", V, "vocab_size", lambda: BinaryCode(-1)),
    C("sign-vocab-bool", V, "vocab_size", lambda: SignCode(True)),
    C("sign-codebook-memory", TooLargeError, "SignCode.vocab_size", lambda: SignCode(10**12).codebook()),
    C("phot-p-zero", V, "PHot.p", lambda: PHot(64, 0)),
    C("phot-p-float", V, "PHot.p", lambda: PHot(64, 1.5)),
    C("phot-encode-str", V, "tokens", lambda: PHot(8, 2).encode(["a"])),
    C("linear-none", V, "Linear.weight", lambda: Linear(None)),
    C("linear-1d", V, "Linear.weight", lambda: Linear(np.ones(3))),
    C("linear-str", V, "Linear.weight", lambda: Linear("abc")),
    C("linear-nan", V, "Linear.weight", lambda: Linear([[float("nan")]])),
    C("linear-bool", T, "Linear.weight", lambda: Linear(np.array([[True]]))),
    C("linear-object", T, "Linear.weight", lambda: Linear(np.array([[object()]]))),
    C("linear-bias-width", V, "Linear.bias", lambda: Linear(np.ones((2, 2)), bias=np.ones(3))),
    C("causal-conv-1d", V, "CausalConv.taps", lambda: CausalConv(np.ones(3))),
    C("causal-conv-no-taps", V, "CausalConv.taps", lambda: CausalConv(np.ones((0, 3)))),
    C("cyclic-conv-inf", V, "CyclicConv.taps", lambda: CyclicConv([[float("inf")]])),
    C("baseconv-filter-width", V, "BaseConv.filters", lambda: IRBaseConv(EYE, np.ones((2, 3)))),
    C("baseconv-not-square", V, "BaseConv.weight", lambda: IRBaseConv(np.ones((2, 3)), np.ones((2, 3)))),
    C("baseconv-cyclic-str", V, "BaseConv.cyclic", lambda: IRBaseConv(EYE, np.ones((2, 2)), cyclic="no")),
    C("softmax-beta-inf", V, "beta", lambda: IRSoftmaxAttention(EYE, EYE, EYE, beta=float("inf"))),
    C("softmax-mask", V, "mask", lambda: IRSoftmaxAttention(EYE, EYE, EYE, beta=1, mask="x")),
    C("softmax-window-zero", V, "window", lambda: IRSoftmaxAttention(EYE, EYE, EYE, beta=1, mask="window", window=0)),
    C("softmax-wk-shape", V, "wk", lambda: IRSoftmaxAttention(EYE, np.ones((2, 3)), EYE, beta=1)),
    C("unnormalised-wv-rows", V, "wv", lambda: UnnormalisedAttention(EYE, EYE, np.ones((3, 2)))),
    C("linear-attention-map-none", V, "feature_map", lambda: LinearAttention(EYE, EYE, EYE, feature_map=None)),
    C("linear-attention-eps", V, "eps", lambda: LinearAttention(EYE, EYE, EYE, IdentityMap(), eps=-1)),
    C("taylor-dim-zero", V, "input_dim", lambda: TaylorMap(input_dim=0)),
    C("taylor-layout", V, "layout", lambda: TaylorMap(2, layout="half")),
    C("readout-ids", V, "token_ids", lambda: ArgmaxReadout(EYE, np.arange(3))),
    C("stream-none", T, "Stream.blocks", lambda: Stream(None)),
    C("stream-width-zero", V, "width", lambda: Stream.of(("a", 0))),
    C("stream-duplicate", V, "'a'", lambda: Stream.of(("a", 2), ("a", 3))),
    C("stream-name-int", V, "name", lambda: Stream.of((3, 2))),
    C("layer-reads-none", T, "Layer.reads", lambda: Layer(Linear(EYE), None, ("a",))),
    C("layer-residual-str", V, "Layer.residual", lambda: Layer(Linear(EYE), ("a",), ("a",), residual="yes")),
    C("layer-op-none", V, "Layer.op", lambda: Layer(None, ("a",), ("a",))),
    C("model-stream-none", V, "Model.stream", lambda: Model(None, ())),
    C("model-layer-none", V, "layer 0", lambda: Model(Stream.of(("a", 2)), (None,))),
    C("model-widths", V, "layer 1", lambda: Model.sequential([Linear(np.ones((3, 3))), Linear(np.ones((4, 4)))], 3)),
    C("evaluate-u-1d", V, "u", lambda: evaluate(MODEL, np.ones(3))),
    C("evaluate-u-width", V, "u", lambda: evaluate(MODEL, np.ones((2, 3)))),
    C("evaluate-backend", V, "backend", lambda: evaluate(Linear(EYE), np.ones((2, 2)), backend="fast")),
    C("evaluate-target-none", V, "model_or_op", lambda: evaluate(None, np.ones((2, 2)))),
    C(
        "evaluate-softmax-exact",
        NotExactError,
        "exact",
        lambda: evaluate(IRSoftmaxAttention(EYE, EYE, EYE, beta=1), np.ones((2, 2), dtype=np.int64), backend="exact"),
    ),  # fmt: skip
    C("analyse-seq-len-zero", V, "seq_len", lambda: analyse(Linear(EYE), 0)),
    C("analyse-seq-len-float", V, "seq_len", lambda: analyse(Linear(EYE), 2.5)),
    C("analyse-model-none", T, "model", lambda: analyse(None, 3)),
    C("generic-seq-len-zero", V, "seq_len", lambda: generic_input(0, 2)),
    C("generic-width-negative", V, "width", lambda: generic_input(2, -1)),
    C("generic-memory", TooLargeError, "seq_len=10000000", lambda: generic_input(10**7, 10**7)),
    C("degree-seq-len-negative", V, "seq_len", lambda: output_degree(Linear(EYE), -1)),
    C("degree-block", V, "block", lambda: output_degree(Linear(EYE), 2, block="zz")),
    C("degree-model-str", T, "model", lambda: output_degree("x", 2)),
    C("embed-blocks-none", T, "blocks", lambda: embed(MODEL, None)),
    C("embed-seq-len-negative", V, "seq_len", lambda: embed(MODEL, {}, seq_len=-1)),
    C("embed-blocks-empty", V, "blocks", lambda: embed(MODEL, {})),
    C("embed-block-unknown", V, "'zz'", lambda: embed(MODEL, {"zz": np.ones((2, 2))})),
    C("embed-block-width", V, "'u'", lambda: embed(MODEL, {"u": np.ones((2, 3))})),
    C("embed-model-none", T, "model", lambda: embed(None, {"u": np.ones((2, 2))})),
    C("read-block-unknown", V, "'zz'", lambda: read(MODEL, np.ones((2, 2)), "zz")),
    C("read-state-width", V, "state", lambda: read(MODEL, np.ones((2, 3)), "u")),
    C("circuit-inputs-zero", V, "num_inputs", lambda: random_circuit(RNG, num_inputs=0, num_gates=1, num_outputs=1)),
    C("circuit-gates-negative", V, "num_gates", lambda: random_circuit(RNG, num_inputs=1, num_gates=-1, num_outputs=1)),
    C("circuit-rng-none", T, "rng", lambda: random_circuit(None, num_inputs=1, num_gates=1, num_outputs=1)),
    C(
        "circuit-probability",
        V,
        "const_probability",
        lambda: random_circuit(RNG, num_inputs=1, num_gates=1, num_outputs=1, const_probability=2),
    ),  # fmt: skip
    C("compile-circuit-none", V, "circuit", lambda: compile_to_baseconv(None)),
    C("compile-seq-len-zero", V, "seq_len", lambda: compile_to_baseconv(circuit(), seq_len=0)),
    C("compile-seq-len-str", V, "seq_len", lambda: compile_to_baseconv(circuit(), seq_len="a")),
    C("builder-unknown-gate", V, "add", lambda: CircuitBuilder().add(0, 1)),
    C("builder-const-nan", V, "const", lambda: CircuitBuilder().const(float("nan"))),
    C("builder-const-str", T, "const", lambda: CircuitBuilder().const("1/2")),
]

CONSTRUCTIONS = [
    C("build-name-unknown", V, "name", lambda: build("nope", **SIZES)),
    C("build-name-none", V, "name", lambda: build(None, **SIZES)),
    C("build-name-int", V, "name", lambda: build(3, **SIZES)),
    C("class-name-unknown", V, "name", lambda: construction_class("nope")),
    C("build-vocab-float", T, "vocab_size", lambda: con(vocab_size=64.0)),
    C("build-vocab-bool", T, "vocab_size", lambda: con(vocab_size=True)),
    C("build-seq-len-str", T, "seq_len", lambda: con(seq_len="32")),
    C("build-pairs-none", T, "num_kv_pairs", lambda: con(num_kv_pairs=None)),
    C("build-vocab-one", V, "vocab_size", lambda: con(vocab_size=1)),
    C("build-seq-len-one", V, "seq_len", lambda: con(seq_len=1)),
    C("build-pairs-zero", V, "num_kv_pairs", lambda: con(num_kv_pairs=0)),
    C("build-pairs-do-not-fit", V, "num_kv_pairs", lambda: con(num_kv_pairs=9)),
    C("build-mask", V, "mask", lambda: con(mask="x")),
    C("build-unknown-knob", V, "bogus", lambda: con(bogus=1)),
    C("build-outside-flag-str", V, "outside_claimed_range", lambda: con(outside_claimed_range="yes")),
    C("build-onehot-memory", TooLargeError, "vocab_size=1000000", lambda: con(vocab_size=10**6)),
    C("signcode-beta-below-proof", V, "beta=1e-06", lambda: con("attention_signcode", beta=1e-6)),
    C("signcode-beta-negative", V, "beta", lambda: con("attention_signcode", beta=-1)),
    C("signcode-beta-str", V, "beta", lambda: con("attention_signcode", beta="big")),
    C("signcode-beta-nan", V, "beta", lambda: con("attention_signcode", beta=float("nan"))),
    C("signcode-width-float", V, "code_width", lambda: con("attention_signcode", code_width=2.5)),
    C("signcode-width-one", V, "code_width", lambda: con("attention_signcode", code_width=1)),
    C("signcode-width-too-small", V, "code_width", lambda: con("attention_signcode", code_width=3)),
    C("signcode-width-memory", TooLargeError, "code_width", lambda: con("attention_signcode", code_width=10**7)),
    C("signcode-shift-none", V, "shift", lambda: con("attention_signcode", shift=None)),
    C(
        "signcode-positional-memory",
        TooLargeError,
        "seq_len=10000000",
        lambda: con("attention_signcode", seq_len=10**7, shift="positional"),
    ),  # fmt: skip
    C("window-missing", V, "window", lambda: con("sliding_window")),
    C("window-zero", V, "window", lambda: con("sliding_window", window=0)),
    C("window-float", V, "window", lambda: con("sliding_window", window=2.5)),
    C("based-values", V, "values", lambda: con("based_taylor", values="x")),
    C("based-vocab-small", V, "vocab_size", lambda: con("based_taylor", vocab_size=3)),
    C("based-pairs-keys", V, "num_kv_pairs", lambda: con("based_taylor", vocab_size=16, seq_len=64, num_kv_pairs=8)),
    C("based-memory", TooLargeError, "vocab_size=1000000", lambda: con("based_taylor", vocab_size=10**6)),
    C(
        "data-independent-odd",
        V,
        "seq_len",
        lambda: build("baseconv_data_independent", **{**BASECONV_SIZES, "seq_len": 63}),
    ),
    C(
        "data-independent-vocab",
        V,
        "vocab_size",
        lambda: build("baseconv_data_independent", **{**BASECONV_SIZES, "vocab_size": 64}),
    ),
    C(
        "data-independent-memory",
        TooLargeError,
        "seq_len=4096",
        lambda: build("baseconv_data_independent", vocab_size=4097, seq_len=4096, num_kv_pairs=4),
    ),  # fmt: skip
    C("input-dependent-t-below-pairs", V, "t", lambda: build("baseconv_input_dependent", **BASECONV_SIZES, t=2)),
    C("input-dependent-t-zero", V, "t", lambda: build("baseconv_input_dependent", **BASECONV_SIZES, t=0)),
    C("input-dependent-t-too-big", V, "t", lambda: build("baseconv_input_dependent", **BASECONV_SIZES, t=64)),
    C("input-dependent-lags", V, "lags", lambda: build("baseconv_input_dependent", **BASECONV_SIZES, lags=None)),
    C(
        "input-dependent-memory",
        TooLargeError,
        "t=4000",
        lambda: build("baseconv_input_dependent", vocab_size=4097, seq_len=4096, num_kv_pairs=4, t=4000),
    ),  # fmt: skip
    C("claimed-beta-negative", V, "beta", lambda: claimed_resources("attention_signcode", **SIZES, beta=-1)),
    C("claimed-beta-below-proof", V, "beta", lambda: claimed_resources("attention_signcode", **SIZES, beta=1e-6)),
    C(
        "claimed-vocab-str",
        T,
        "vocab_size",
        lambda: claimed_resources("attention_onehot", **{**SIZES, "vocab_size": "64"}),
    ),
    C(
        "claimed-seq-len-none",
        T,
        "seq_len",
        lambda: claimed_resources("baseconv_data_independent", **{**BASECONV_SIZES, "seq_len": None}),
    ),  # fmt: skip
    C("predict-shape", V, "inputs", lambda: con().predict(np.zeros((2, 31), dtype=np.int64))),
    C("predict-float", V, "inputs", lambda: con().predict(np.zeros((2, 32)))),
    C("predict-token-range", V, "inputs", lambda: con().predict(np.full((2, 32), 64))),
    C("predict-backend-none", V, "backend", lambda: con().predict(PRED, backend=None)),
    C("predict-backend-not-exact", V, "backend", lambda: con("attention_signcode").predict(PRED, backend="symbolic")),
    C("predict-memory", TooLargeError, "inputs.shape", lambda: con().predict(HUGE_ROWS)),
    C("check-construction-none", T, "construction", lambda: check_construction(None)),
]

GPU = [
    C("attention-d-zero", V, "d_model", lambda: SoftmaxAttention(0)),
    C("attention-d-float", T, "d_model", lambda: SoftmaxAttention(4.0)),
    C("attention-heads", V, "num_heads", lambda: SoftmaxAttention(4, num_heads=3)),
    C("attention-mask", V, "mask", lambda: SoftmaxAttention(4, mask="bogus")),
    C("attention-window-missing", V, "window", lambda: SoftmaxAttention(4, mask="window")),
    C("attention-memory", TooLargeError, "d_model=1000000", lambda: SoftmaxAttention(10**6)),
    C("sliding-window-zero", V, "window", lambda: SlidingWindowAttention(4, window=0)),
    C("baseconv-kernel-long", V, "kernel_size", lambda: BaseConv(4, 8, kernel_size=9)),
    C("baseconv-semantics", V, "semantics", lambda: BaseConv(4, 8, semantics="hyena")),
    C("baseconv-memory", TooLargeError, "d_model=100000", lambda: BaseConv(10**5, 10**5)),
    C("based-layout", V, "layout", lambda: BasedLinearAttention(4, layout="half")),
    C("based-impl", V, "impl", lambda: BasedLinearAttention(4, impl="triton")),
    C("based-eps-negative", V, "eps", lambda: BasedLinearAttention(4, eps=-1.0)),
    C("based-mixer-memory", TooLargeError, "d_model=1000000", lambda: BasedLinearAttention(10**6)),
    C("ssm-state-float", T, "d_state", lambda: SelectiveSSM(4, d_state=2.0)),
    C("ssm-memory", TooLargeError, "d_model=1000000", lambda: SelectiveSSM(10**6)),
    C("mixer-width", V, "x.shape", lambda: mixer()(torch.zeros(2, 3, 5))),
    C("mixer-int-input", V, "x.dtype", lambda: mixer()(torch.zeros(1, 3, 4, dtype=torch.int64))),
    C("mixer-numpy-input", T, "x", lambda: mixer()(np.zeros((1, 3, 4)))),
    C("mixer-batch-zero", V, "batch_size", lambda: mixer().init_state(0)),
    C("mixer-step-shape", V, "x_t.shape", lambda: mixer().step(torch.zeros(1, 3), mixer().init_state(1))),
    C("device-unknown", V, "device", lambda: resolve_device("bogus")),
    C("dtype-str", T, "dtype", lambda: resolve_dtype("float32")),
    C("load-none", T, "construction", lambda: load(None)),
    C("load-target", V, "target", lambda: load(con(vocab_size=8, seq_len=8, num_kv_pairs=2), target="jax")),
    C("load-dtype", V, "dtype", lambda: load(con(vocab_size=8, seq_len=8, num_kv_pairs=2), dtype=torch.bfloat16)),
    C("export-none", T, "construction", lambda: export_state_dict(None)),
    C("fit-report-layout", V, "layout", lambda: fit_report(con(vocab_size=8, seq_len=8, num_kv_pairs=2), layout="x")),
    C("golden-name", V, "name", lambda: load_contract("nope")),
    C("golden-arrays-name", V, "name", lambda: load_golden_arrays("nope")),
    C("state-none", T, "state", lambda: count_state_numbers(None)),
    C("dtypes-unknown", V, "dtypes", lambda: parse_dtypes("float8", "float32")),
]

API_CASES = CORE + POLYNOMIALS + CONSTRUCTIONS + GPU


@pytest.mark.parametrize("case", api_params(API_CASES))
def test_api_refuses_bad_input(case: ApiCase) -> None:
    assert_api_refuses(case)


L = CliCase
EXPORT = ("export", "zoology", "--vocab-size", "8192", "--seq-len", "64", "--num-kv-pairs", "4", "--out", "{dir}/ck")
CLI_CASES = [
    L("top-unknown-command", ("bogus",), "unknown command 'bogus'"),
    L("top-unknown-option", ("--bogus",), "unknown command '--bogus'"),
    L("task-unknown-subcommand", ("task", "bogus"), "invalid choice: 'bogus'"),
    L("task-unknown-option", ("task", "sample", "--bogus"), "--bogus"),
    L("task-extra-argument", ("task", "sample", "extra"), "extra"),
    L("task-seq-len-odd", ("task", "sample", "--seq-len", "31"), "seq_len=31"),
    L("task-seq-len-text", ("task", "sample", "--seq-len", "abc"), "--seq-len"),
    L("task-seq-len-negative", ("task", "sample", "--seq-len", "-2"), "seq_len=-2"),
    L("task-seq-len-float", ("task", "sample", "--seq-len", "32.0"), "--seq-len"),
    L("task-vocab-small", ("task", "sample", "--vocab-size", "20"), "vocab_size=20"),
    L("task-vocab-zero", ("task", "sample", "--vocab-size", "0"), "vocab_size=0"),
    L("task-vocab-exponent", ("task", "sample", "--vocab-size", "1e3"), "--vocab-size"),
    L("task-vocab-int64", ("task", "sample", "--vocab-size", "100000000000000000000000"), "vocab_size"),
    L("task-pairs-zero", ("task", "sample", "--num-kv-pairs", "0"), "num_kv_pairs=0"),
    L("task-pairs-too-many", ("task", "sample", "--num-kv-pairs", "9"), "num_kv_pairs=9"),
    L("task-passes-zero", ("task", "sample", "--num-passes", "0"), "num_passes=0"),
    L("task-passes-do-not-fit", ("task", "sample", "--num-passes", "4"), "num_kv_pairs=4"),
    L("task-power-zero", ("task", "sample", "--power-a", "0"), "power_a=0.0"),
    L("task-power-nan", ("task", "sample", "--power-a", "nan"), "power_a=nan"),
    L("task-power-inf", ("task", "sample", "--power-a", "inf"), "power_a=inf"),
    L("task-power-overflow", ("task", "sample", "--power-a", "1e308"), "power_a=1e+308"),
    L("task-power-text", ("task", "sample", "--power-a", "x"), "--power-a"),
    L("task-filler", ("task", "sample", "--filler", "ones"), "--filler"),
    L("task-seed-negative", ("task", "sample", "--seed", "-1"), "seed=-1"),
    L("task-seed-text", ("task", "sample", "--seed", "x"), "--seed"),
    L("task-examples-zero", ("task", "sample", "--num-examples", "0"), "num_examples=0"),
    L("task-examples-memory", ("task", "sample", "--num-examples", "10000000000000"), "num_examples=10000000000000"),
    L(
        "task-long-memory",
        ("task", "sample", "--seq-len", "2000000000", "--vocab-size", "2000000001", "--num-examples", "1000"),
        "num_examples=1000",
    ),  # fmt: skip
    L("verify-claims-comma", ("verify", "--claims", ","), "--claims"),
    L("verify-claims-space", ("verify", "--claims", " "), "--claims"),
    L("verify-claims-unknown", ("verify", "--claims", "U1,Z9", "--quiet"), "Z9"),
    L("verify-claims-lowercase", ("verify", "--claims", "u1", "--quiet"), "u1"),
    L("verify-budget", ("verify", "--budget", "huge"), "--budget"),
    L("verify-json-under-file", ("verify", "--claims", "L4", "--json", "{file}/v.json"), "--json"),
    L("verify-json-folder", ("verify", "--claims", "L4", "--json", "{dir}"), "--json"),
    L(
        "verify-markdown-under-file",
        ("verify", "--claims", "L4", "--json", "{dir}/v.json", "--markdown", "{file}/x/v.md"),
        "--markdown",
    ),  # fmt: skip
    L("verify-unknown-option", ("verify", "--bogus"), "--bogus"),
    L("verify-quiet-value", ("verify", "--quiet=1"), "--quiet"),
    L("tables-out-under-file", ("tables", "--out", "{file}/sub"), "--out"),
    L("tables-out-file", ("tables", "--out", "{file}"), "--out"),
    L("tables-unknown-option", ("tables", "--bogus"), "--bogus"),
    L("export-no-target", ("export", "--bogus"), "--bogus"),
    L("export-missing-out", ("export", "zoology", "--construction", "attention_signcode"), "--out"),
    L("export-unknown-construction", (*EXPORT, "--construction", "nope"), "construction='nope'"),
    L("export-baseconv", (*EXPORT, "--construction", "baseconv_data_independent"), "cannot be exported"),
    L("export-narrow", (*EXPORT, "--construction", "attention_signcode", "--d-model", "32"), "d_model=32"),
    L("export-window-missing", (*EXPORT, "--construction", "sliding_window"), "window"),
    L("export-window-zero", (*EXPORT, "--construction", "sliding_window", "--window", "0"), "window=0"),
    L(
        "export-examples-zero",
        (*EXPORT, "--construction", "attention_signcode", "--num-examples", "0"),
        "num_examples=0",
    ),
    L("export-out-under-file", (*EXPORT[:-1], "{file}/ck", "--construction", "attention_signcode"), "--out"),
]


@pytest.mark.parametrize("case", cli_params(CLI_CASES))
def test_cli_refuses_bad_input(case: CliCase, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_cli_refuses(case, capsys, tmp_path)


def test_at_least_200_distinct_bad_inputs() -> None:
    ids = [case.id for case in API_CASES] + [case.id for case in CLI_CASES]
    assert len(ids) == len(set(ids)) >= 200


def test_verify_refusals_run_nothing_and_overwrite_no_report(tmp_path: Path, capsys) -> None:
    from mqarkit.cli import main

    report = tmp_path / "v.json"
    report.write_text("earlier report")
    for claims in (",", "U1,Z9"):
        assert main(["verify", "--claims", claims, "--json", str(report), "--markdown", str(tmp_path / "v.md")]) == 2
    assert report.read_text() == "earlier report" and not (tmp_path / "v.md").exists()
    assert main(["verify", "--claims", "L4", "--json", str(tmp_path / "f" / "v.json"), "--markdown", str(report)]) == 0
    assert "L4" in report.read_text()  # a good request still writes


@pytest.mark.parametrize(
    "argv", [["task", "sample", "--seq-len", "31"], ["verify", "--claims", ","], ["task", "sample", "--power-a", "x"]]
)
def test_the_installed_command_prints_one_line_and_exits_2(argv: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mqarkit", *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"mqarkit {argv[0]}") and ": error: " in proc.stderr
