"""The operator IR: polynomial operators evaluated symbolically (sympy), exactly (rationals) and in float64."""
