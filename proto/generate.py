"""Regenerates the Python code for the API contract into ``ledger/v1/``.

Run ``python proto/generate.py`` after editing a ``.proto`` file. The generated code is
committed so that installing the project needs no code generation; ``tests/test_proto_fresh.py``
regenerates into a temporary folder and fails when the committed copy is stale.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "ledger" / "v1").glob("*.proto"))


def generate(out: Path) -> None:
    """Writes messages, gRPC stubs and typed stubs (mypy-protobuf) under ``out``."""
    import grpc_tools
    from grpc_tools import protoc

    # protoc finds the mypy-protobuf plugins on PATH, beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{wkt}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = out / "ledger" / "v1" / "__init__.py"
    init.write_text('"""Generated from proto/ledger/v1 by proto/generate.py. Do not edit."""\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="root to write ledger/v1 under")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
