"""Size rules shared by the BaseConv MQAR constructions: the raw-token layout of ``mqarkit.task.MQARSpec``."""

from __future__ import annotations

from mqarkit.task import MQARSpec


def check_mqar_sizes(*, vocab_size: int, seq_len: int, num_kv_pairs: int) -> None:
    """Raise ``ValueError`` (naming the field and the rule) unless ``(c, N, D)`` is a one-pass ``MQARSpec``:
    ``N`` even, ``4D <= N``, ``D <= c//2 - 1``, ``c > N``."""
    MQARSpec(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs)
