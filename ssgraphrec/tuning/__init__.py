"""Hyper-parameter tuning on validation: search spaces, Optuna studies, tuned configurations."""
