"""Verdicts: a profile's budgets against a build report (budgets), and `edgeft gate` on bench results against budgets
and a baseline (gate)."""
