"""The committed generated code matches proto/."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERATED = REPO / "splitkey" / "v1"


def test_generated_code_is_fresh(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(REPO / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True, env=env)
    fresh = sorted(p.name for p in (tmp_path / "splitkey" / "v1").iterdir())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.suffix in (".py", ".pyi") and p.name != "__init__.py")
    assert fresh == committed, "generated file set differs; run scripts/gen-proto.sh"
    for name in fresh:
        assert filecmp.cmp(tmp_path / "splitkey" / "v1" / name, GENERATED / name, shallow=False), (
            f"splitkey/v1/{name} is stale; run scripts/gen-proto.sh and commit the result"
        )
