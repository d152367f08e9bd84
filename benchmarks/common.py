"""Shared pieces of the benchmark scripts: the results folder, CSV, a plain-text table, a plot
that is skipped (with a note) when matplotlib is not installed.
"""
from __future__ import annotations

import csv
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def print_table(rows: list[dict]) -> str:
    """Print `rows` (dicts with the same keys) as an aligned Markdown table; return its text."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    width = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["| " + " | ".join(k.ljust(w) for k, w in zip(keys, width)) + " |",
             "|" + "|".join("-" * (w + 2) for w in width) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, width)) + " |" for r in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def save_plot(path: Path, series: dict, xlabel: str, ylabel: str, title: str,
              logx: bool = True, logy: bool = True, markers: bool = False) -> bool:
    """Plot `series` (label -> (xs, ys)) to `path`; False (and a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(matplotlib is not installed: {path.name} not drawn; pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (xs, ys) in series.items():
        if len(xs):
            ax.plot(xs, ys, "o-" if markers else "-", label=label, markersize=4)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return True
