"""Derivations (sympy) and numeric predictions, one module per chapter."""
