"""Field-deployment tests reuse the discovery tests' network-namespace lab."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "discovery"))
