"""The dashboard tests reuse the security tests' certificate helpers (tests/security/seckit.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
