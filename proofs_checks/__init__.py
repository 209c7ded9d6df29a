"""The claim registry, machine checks, `mqarkit verify` and the dimension-bound tables."""
