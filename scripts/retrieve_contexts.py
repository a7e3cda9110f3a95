#!/usr/bin/env python
"""Retrieve CLNER external contexts for a dataset: `clner-retrieve` from a source checkout.

    python scripts/retrieve_contexts.py INPUT OUTPUT --backend {duckduckgo,bm25,document,random} [options]

The command lives in `clner/commands/retrieve.py` (installed as `clner-retrieve`); see its `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clner.commands.retrieve import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
