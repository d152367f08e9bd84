"""Where the `.nnir` grammar lives: `GRAMMAR_PATH` is the installed `nnir.lark` file."""
from pathlib import Path

GRAMMAR_PATH = Path(__file__).with_name("nnir.lark")
