"""Scale checks on the GPU: each construction loaded into torch mixers at large N (see ``mqarkit.gpu.scale``).

Usage: ``python benchmarks/scale_checks.py [--preset gpu] [--out docs/results]``; writes ``scale_checks.json`` and
``scale_checks.md`` (device, torch and triton versions, accuracy, tokens/s, peak memory per case and dtype).
"""

from __future__ import annotations

import sys

from mqarkit.gpu.scale import main

if __name__ == "__main__":
    args = sys.argv[1:]
    main(args if "--out" in args else [*args, "--out", "docs/results"])
