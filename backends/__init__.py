"""Lowering and solvers: SMT-LIB (z3, cvc5, pysmt, any binary), MILP (HiGHS), trainers."""
