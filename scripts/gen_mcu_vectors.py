"""Write the MCU link test vectors (JSON and C header) from the Python codec.

    python scripts/gen_mcu_vectors.py          # (re)write both files
    python scripts/gen_mcu_vectors.py --check  # exit 1 if either file is stale

The vectors are deterministic (fixed keys and randoms), so a rerun writes identical files;
`--check` is what CI and tests/mculink/test_mculink_vectors.py run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hal.mculink.testvectors import OUTPUTS, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    vectors = build()
    stale = []
    for path, render in OUTPUTS:
        text = render(vectors)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} is stale: run python scripts/gen_mcu_vectors.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
