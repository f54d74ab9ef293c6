"""Generate the Python gRPC stubs from proto/ into chargeport/v1/ (`--check`: fail if stale)."""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
SOURCES = sorted(PROTO_DIR.glob("chargeport/v1/*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path) -> None:
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(s) for s in SOURCES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("gen_proto: protoc failed")


def main() -> int:
    if "--check" not in sys.argv:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for src in SOURCES:
            for suffix in SUFFIXES:
                rel = src.relative_to(PROTO_DIR).with_suffix("")
                name = rel.parent / (rel.name + suffix)
                if not (ROOT / name).exists() or not filecmp.cmp(
                    Path(tmp) / name, ROOT / name, shallow=False
                ):
                    stale.append(str(name))
        if stale:
            print(f"gen_proto: stale generated stubs: {', '.join(stale)}; run `make proto`")
            return 1
    print("gen_proto: stubs are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
