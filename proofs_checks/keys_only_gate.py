"""E6 through the BaseConv constructions: "keys only" is carried by position gates, and it works where a shared ``W``
cannot, on inputs in which a key token also appears at positions that are not key slots.

The generic E6 check proves that no shared ``W`` separates a key from a later copy of the same token on untagged
one-hot input. Here the data-independent construction (``baseconv_data_independent``, whose lag gates ``G_s`` are
position-only biases, :mod:`mqarkit.constructions._baseconv_layout`) runs on ``random``-filler instances drawn by
``mqarkit.task``: there, fillers repeat key tokens at non-key positions (counted), and every scored query must still be
answered with its value. Both encodings (sign, one-hot) are run; the check fails with the instance otherwise, and
fails if the draw contained no repeated key (it would then show nothing).
"""

from __future__ import annotations

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

NAME = "baseconv_data_independent"
SEED = 20240409


def repeated_keys(inputs: np.ndarray, key_positions: np.ndarray, query_positions: np.ndarray) -> int:
    """Number of (example, position) where a key token stands outside its key slot and its query slot:
    ``inputs`` (n, N), ``key_positions`` / ``query_positions`` (n, D) -> int."""
    count = 0
    for x, kp, qp in zip(inputs, key_positions, query_positions):
        keys = set(x[kp].tolist())
        own = set(kp.tolist()) | set(qp.tolist())
        count += sum(1 for i, tok in enumerate(x.tolist()) if tok in keys and i not in own)
    return count


def check_position_gates_on_repeated_keys(ctx: CheckContext) -> CheckOutcome:
    from mqarkit.constructions import build
    from mqarkit.oracle import expected_answers
    from mqarkit.task import MQARSpec, generate

    counts = {"queries": 0, "repeated_keys": 0}
    lengths = (8, 16, 32) if ctx.budget.full else (8, 16)
    pts = [(c, n, d, enc) for n in lengths for c in (n + 2, 2 * n + 2) for d in (1, n // 4) for enc in ("sign",
           "onehot")]  # fmt: skip

    def step(point: tuple[int, int, int, str]) -> dict | None:
        c, n, d, enc = point
        batch = generate(MQARSpec(c, n, d, filler="random"), 8, np.random.default_rng(SEED + c + n + d))
        con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, encoding=enc)
        pred = np.take_along_axis(con.predict(batch.inputs), batch.query_positions, axis=1)
        answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
        counts["queries"] += answers.size
        counts["repeated_keys"] += repeated_keys(batch.inputs, batch.key_positions, batch.query_positions)
        wrong = np.argwhere(pred != answers)
        if len(wrong):
            r, j = (int(v) for v in wrong[0])
            return {"vocab_size": c, "seq_len": n, "num_kv_pairs": d, "encoding": enc,
                    "inputs": batch.inputs[r].tolist(), "query_position": int(batch.query_positions[r, j])}  # fmt: skip
        return None

    ran, bad = run_points(pts, step)
    ns = [p[1] for p in ran]
    covered = (
        f"{NAME}: {counts['queries']} queries of random-filler instances with {counts['repeated_keys']} key tokens "
        f"repeated outside their slots, {len(ran)} points, N {min(ns)}..{max(ns)}, sign and one-hot encodings"
    )
    if bad is not None:
        return failed(covered, bad, "a query is answered wrongly although the gates admit key slots only")
    if counts["repeated_keys"] == 0:
        return failed(covered, dict(counts), "no key token was repeated: the run shows nothing about E6")
    return passed(covered, **counts)
