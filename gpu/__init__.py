"""Torch mixers, weight loaders, measured state size and the frontier harness (imports torch, never sympy)."""
