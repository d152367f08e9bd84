"""Embedding a network into a model the user owns: plain MILP data (`data.py`), a HiGHS model
(`highs_embed.py`), a z3 solver (`z3_embed.py`) or a PySMT formula (`pysmt_embed.py`).

The public entry point is `nnir.embedding` (`nnir.embed`, `nnir.Embedding`).
"""
