"""`python -m nnir` is `nnirc`."""
import sys

from nnir.cli import main

sys.exit(main())
