"""nnir: a solver-agnostic IR and compiler for ReLU networks."""
