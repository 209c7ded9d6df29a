"""E7 through the U3 construction: an instance on which ``baseconv_input_dependent`` with ``lags="autocorrelation"``
([Z]'s rule: the top-``t`` peaks of the input's autocorrelation) answers a query wrongly because its key distance is
not among the chosen lags, while the same construction with ``lags="exact"`` answers every query.

This is erratum 7 shown on the construction itself (the generic E7 check shows it on the autocorrelation alone). The
search draws zero-filler instances with ``mqarkit.task`` (small lags then collect filler-filler matches) at growing
sizes, ``t = D``, and passes at the first witness, which it reports (inputs, the missed lag, the chosen lags).
"""

from __future__ import annotations

import numpy as np

from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

NAME = "baseconv_input_dependent"
SEED = 20240407


def check_construction_misses_a_lag(ctx: CheckContext) -> CheckOutcome:
    from mqarkit.constructions import build
    from mqarkit.constructions._baseconv_layout import needed_lags
    from mqarkit.oracle import expected_answers
    from mqarkit.task import MQARSpec, generate

    tried = 0
    for c, n, d in [(18, 16, 2), (34, 32, 4), (66, 64, 8)]:
        batch = generate(MQARSpec(c, n, d, filler="zero", power_a=1.0), 16, np.random.default_rng(SEED + n))
        answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
        auto = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, lags="autocorrelation", t=d)
        exact = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, lags="exact", t=d)
        for r in range(batch.num_examples):
            tried += 1
            x = batch.inputs[r : r + 1]
            got = np.take_along_axis(auto.predict(x), batch.query_positions[r : r + 1], axis=1)[0]
            ok = np.take_along_axis(exact.predict(x), batch.query_positions[r : r + 1], axis=1)[0]
            if not (ok == answers[r]).all():
                return failed(
                    f"{tried} instances", {"inputs": x[0].tolist()}, "lags='exact' missed a query (U3 claim broken)"
                )
            chosen = auto.lags_for(x[0])
            missing = sorted(set(needed_lags(x[0], d)) - set(chosen))
            if (got != answers[r]).any() and missing:
                j = int(np.argwhere(got != answers[r])[0, 0])
                return passed(
                    f"search over {tried} zero-filler instances, N <= {n}, t = D: witness found on the construction",
                    witness={"vocab_size": c, "seq_len": n, "num_kv_pairs": d, "inputs": x[0].tolist(),
                             "query_position": int(batch.query_positions[r, j]), "predicted": int(got[j]),
                             "expected": int(answers[r, j]), "chosen_lags": chosen, "missed_lags": missing},
                )  # fmt: skip
    return failed(f"{tried} instances", {"searched": tried}, "no instance where the autocorrelation lags miss a query")
