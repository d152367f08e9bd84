"""Paths shared by the tests (tests/ is on sys.path under pytest's default import mode)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED = ROOT.parent / "shared" / "benchmarks"
