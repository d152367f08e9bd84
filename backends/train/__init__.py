"""Numeric trainers (gradient baseline, ADMM) answering `train` queries without a solver."""
