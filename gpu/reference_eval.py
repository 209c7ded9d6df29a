"""Score a reference-layout model on the reference generator's data, at the query positions only.

``evaluate_reference(model, vocab_size=c, seq_len=N, num_kv_pairs=D, num_examples=n, seed=s,
random_non_queries=...) -> RecallScore``: the data are :func:`mqarkit.zoology.zoology_mqar_batch` (the reference
``multiquery_ar``'s draws; its random filler stands in for the reference's unseeded ``torch.randint``), the answers
:func:`mqarkit.oracle.expected_answers`, the ambiguous queries :func:`mqarkit.oracle.ambiguous_queries` (a filler
equal to the key before the query). Logits are formed only at the ``D`` query rows of each example (``(n, D, c)``,
never ``(n, N, c)``), ``chunk`` examples at a time. ``window``: also score the sliding-window recall condition of U8
(:func:`mqarkit.constructions.sliding_window.recalled`): a query is *in the window* iff its value position lies
in the last ``w`` positions.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mqarkit.oracle import ambiguous_queries, expected_answers
from mqarkit.zoology import zoology_mqar_batch


@dataclass(frozen=True)
class RecallScore:
    seq_len: int
    num_kv_pairs: int
    num_examples: int
    seed: int
    random_non_queries: bool
    dtype: str
    num_queries: int
    num_ambiguous: int
    num_correct_unambiguous: int
    accuracy_unambiguous: float  # correct / unambiguous queries
    window: int | None = None
    num_in_window: int | None = None  # unambiguous queries whose pair lies in the window (U8's recall set)
    num_recall_set_mismatches: int | None = None  # unambiguous queries where correct != in window

    def as_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=16)
def reference_batch(
    vocab_size: int, seq_len: int, num_kv_pairs: int, num_examples: int, seed: int, random_non_queries: bool
):
    """The reference generator's batch (cached: several checkpoints are scored on the same data)."""
    return zoology_mqar_batch(
        vocab_size=vocab_size,
        num_examples=num_examples,
        input_seq_len=seq_len,
        seed=seed,
        num_kv_pairs=num_kv_pairs,
        random_non_queries=random_non_queries,
    )


@torch.no_grad()
def query_predictions(model, inputs: np.ndarray, query_positions: np.ndarray, chunk: int = 16) -> np.ndarray:
    """``argmax`` of the logits at the query rows: inputs ``(n, N)``, query_positions ``(n, D)`` -> ``(n, D)``."""
    weight = model.embedding.weight
    out = []
    for s in range(0, inputs.shape[0], chunk):
        x = torch.from_numpy(inputs[s : s + chunk]).to(weight.device)
        qp = torch.from_numpy(query_positions[s : s + chunk]).to(weight.device)
        hidden = model.hidden(x)  # (b, N, d)
        rows = torch.gather(hidden, 1, qp[..., None].expand(-1, -1, hidden.shape[-1]))  # (b, D, d)
        out.append((rows @ weight.T).argmax(-1).cpu())
    return torch.cat(out).numpy().astype(np.int64)


def evaluate_reference(
    model,
    *,
    vocab_size: int,
    seq_len: int,
    num_kv_pairs: int,
    num_examples: int,
    seed: int,
    random_non_queries: bool,
    window: int | None = None,
    chunk: int = 16,
) -> RecallScore:
    """Accuracy on the unambiguous queries (module docstring)."""
    batch = reference_batch(vocab_size, seq_len, num_kv_pairs, num_examples, seed, random_non_queries)
    if batch.spec.vocab_size != model.vocab_size:
        raise ValueError(f"vocab_size={vocab_size}: the model's vocabulary is {model.vocab_size}")
    predictions = query_predictions(model, batch.inputs, batch.query_positions, chunk)
    answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
    ambiguous = np.take_along_axis(ambiguous_queries(batch), batch.query_positions, axis=1)
    correct = (predictions == answers) & ~ambiguous
    clear = int((~ambiguous).sum())
    extra = {}
    if window is not None:
        from mqarkit.constructions.sliding_window import recalled

        inside = recalled(batch, window) & ~ambiguous
        extra = {
            "window": int(window),
            "num_in_window": int(inside.sum()),
            "num_recall_set_mismatches": int(((predictions == answers) != recalled(batch, window))[~ambiguous].sum()),
        }
    return RecallScore(
        seq_len=seq_len,
        num_kv_pairs=num_kv_pairs,
        num_examples=num_examples,
        seed=seed,
        random_non_queries=random_non_queries,
        dtype=str(model.embedding.weight.dtype).removeprefix("torch."),
        num_queries=int(answers.size),
        num_ambiguous=int(ambiguous.sum()),
        num_correct_unambiguous=int(correct.sum()),
        accuracy_unambiguous=float(correct.sum() / clear) if clear else float("nan"),
        **extra,
    )
