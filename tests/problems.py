"""A library of small problems with known verdicts, run against every installed backend."""

TINY = """net tiny {
  input x[2] in [0, 1]
  relu   h[2] = [[1, -1], [-1, 1]] x
  linear y[1] = [[1, 1]] h + [-0.5]
}
"""
THIRD = """net third {
  input x[1] in [0, 1]
  linear y[1] = [[1/3]] x
}
"""
# y = relu(x0 + x1 - 1) - relu(x0 + x1 - 1.5) ... a clipped ramp on the sum
RAMP = """net ramp {
  input x[2] in [[0, 1], [0, 2]]
  where sum(x) <= 2.5
  relu   h[2] = [[1, 1], [1, 1]] x + [-1, -1.5]
  relu   g[2] = [[1, -1], [-1, 1]] h
  linear y[2] = [[1, 0], [2, 3]] g + [0, 0.25]
}
"""
POINT = """net point {
  input x[2] in [[0.5, 0.5], [-1, -1]]
  relu y[1] = [[2, 1]] x
}
"""

# (id, source, property (verify query text after the colon), expected)
PROBLEMS = [
    ("reach", TINY, "y[0] >= 0.4", "sat"),
    ("cap", TINY, "y[0] > 0.5", "unsat"),
    ("at_boundary", TINY, "y[0] >= 0.5", "sat"),
    ("equality", TINY, "y[0] == 0.25", "sat"),
    ("below_min", TINY, "y[0] < -0.5", "unsat"),
    ("disjunction", TINY, "y[0] >= 10 or y[0] <= -0.5", "sat"),
    ("negation", TINY, "not (y[0] <= 0.5)", "unsat"),
    ("hidden_both", TINY, "h[0] >= 0.1 and h[1] >= 0.1", "unsat"),
    ("hidden_one", TINY, "h[0] >= 0.9 and h[1] <= 0", "sat"),
    ("true", TINY, "true", "sat"),
    ("false", TINY, "false", "unsat"),
    ("exact_third", THIRD, "y[0] == 1/3", "sat"),
    # A gap of 1e-12 is far below MILP tolerances: only exact reasoning gets these right.
    ("third_above", THIRD, "y[0] >= 1/3 + 0.000000000001", "unsat"),
    ("third_below", THIRD, "y[0] >= 1/3 - 0.000000000001", "sat"),
    ("ramp_max", RAMP, "y[0] >= 0.5", "sat"),
    ("ramp_over", RAMP, "y[0] > 0.5", "unsat"),
    ("ramp_second", RAMP, "y[1] >= 1.25 and y[0] >= 0.5", "sat"),
    ("ramp_second_over", RAMP, "y[1] > 1.25 or (y[1] > 0.25 and y[0] <= 0)", "unsat"),
    ("ramp_sum_cut", RAMP, "h[1] > 1", "unsat"),
    ("degenerate_box", POINT, "y[0] == 0", "sat"),
    ("degenerate_box_no", POINT, "y[0] > 0", "unsat"),
]


def source_of(problem) -> str:
    pid, net, prop, _ = problem
    name = net.split()[1]
    return f"{net}\nverify {name} as {pid}: {prop}\n"
