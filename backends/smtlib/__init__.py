"""IR -> SMT-LIB text (QF_LRA), and the backends that solve it: z3, cvc5, PySMT, any binary.

Import from the modules (`lower`, `z3_backend`, ...): this package imports none of them, so that
importing one helper (`check`, `lower`) never loads every backend, and through them the exact
trainer that itself uses `check` (a cycle).
"""
