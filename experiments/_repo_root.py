"""Imported by a script run by path (``python experiments/NAME.py``): puts the repository root
on ``sys.path`` so that ``import experiments`` and ``import simdyn`` resolve as under ``-m``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
