"""Generate the Python code for proto/pausable/v1/*.proto into the same folder.

The only way generated code enters the repository; tests/unit/test_proto_drift.py
fails when the checked-in files differ from what this script produces.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
PACKAGE_DIR = PROTO_ROOT / "pausable" / "v1"
INIT_TEXT = '"""Generated from proto/pausable/v1 by scripts/gen_protos.py. Do not edit."""\n'


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every .proto file; return the generated files under out_root."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_root / "pausable" / "v1"
    (package / "__init__.py").write_text(INIT_TEXT)
    return sorted(p for p in package.iterdir() if p.suffix in {".py", ".pyi"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the checked-in code is stale")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in generate(Path(tmp))}
    current = {p.name: p.read_text() for p in PACKAGE_DIR.iterdir() if p.suffix in {".py", ".pyi"}}
    if options.check:
        stale = sorted(name for name in fresh.keys() | current.keys() if fresh.get(name) != current.get(name))
        if stale:
            print("stale generated code: " + ", ".join(stale) + "; run python scripts/gen_protos.py", file=sys.stderr)
            return 1
        return 0
    for name in current.keys() - fresh.keys():
        (PACKAGE_DIR / name).unlink()
    for name, text in fresh.items():
        (PACKAGE_DIR / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
