"""Balanced sign codes: every code has as many ``+1`` as ``-1`` entries (so LayerNorms leave them alone).

Glossary: ``c`` = ``vocab_size``; ``m`` the code width (even); ``b(u) in {-1,+1}^m`` the code of token ``u`` with
exactly ``m/2`` entries ``+1``; ``<b(u), b(u')>`` their inner product.

Facts used by :mod:`mqarkit.gpu.reference_export` and :mod:`mqarkit.constructions.delta_rule`:

- every code has mean 0 and squared norm ``m``, so a residual stream that holds codes (or sums ``a b(u) + a' b(u')``
  in disjoint channel blocks) has mean 0 and a norm that does not depend on the tokens: a LayerNorm acts on it as one
  fixed positive scale (computed exactly, eps included);
- two distinct balanced codes differ in an even number ``h >= 2`` of entries, so
  ``<b(u), b(u')> = m - 2h <= m - 4``: in unit codes ``b/sqrt(m)`` a match scores 1 and a non-match at most
  ``1 - 4/m`` (the score gap ``delta = 4/m``);
- there are ``C(m, m/2)`` of them: ``m = 16`` gives 12,870 >= 8,192 (the papers' vocabulary);
- their 0/1 form ``a(u) = (b(u) + 1)/2`` has exactly ``m/2`` ones, so ``<a(v), b(u)> = 2|A(v) n A(u)| - m/2`` is
  ``m/2`` at ``u = v`` and at most ``m/2 - 2`` otherwise (``A(u)`` the set of ones of ``a(u)``).

Codes are assigned in lexicographic order of the positions of their ``+1`` entries (token 0 gets ``+1`` on the first
``m/2`` entries), which makes the codebook a pure function of ``(c, m)``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def balanced_code_width(vocab_size: int) -> int:
    """The smallest even ``m >= 4`` with ``C(m, m/2) >= c``."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size!r}: must be an int >= 2")
    m = 4
    while math.comb(m, m // 2) < vocab_size:
        m += 2
    return m


def balanced_codes(vocab_size: int, width: int) -> np.ndarray:
    """``B[u] = b(u)``: (c, m) int64 in ``{-1, +1}``, each row with ``m/2`` entries ``+1``, rows distinct."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 4 or width % 2:
        raise ValueError(f"width={width!r}: must be an even int >= 4")
    if math.comb(width, width // 2) < vocab_size:
        raise ValueError(
            f"width={width}: C({width}, {width // 2}) = {math.comb(width, width // 2)} balanced codes cannot "
            f"separate vocab_size={vocab_size} tokens"
        )
    out = -np.ones((vocab_size, width), dtype=np.int64)
    for u, ones in zip(range(vocab_size), itertools.combinations(range(width), width // 2)):
        out[u, list(ones)] = 1
    return out
