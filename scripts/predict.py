#!/usr/bin/env python
"""Tag named entities in a file with a trained CLNER model: `clner-predict` from a source checkout.

    python scripts/predict.py --model out/ --input sentences.txt --output entities.jsonl

The command lives in `clner/commands/predict.py` (installed as `clner-predict`); see its `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clner.commands.predict import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
