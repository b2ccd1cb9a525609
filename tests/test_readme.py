"""The README's Python blocks run, in order, as one script (with warnings as errors)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4
    script = tmp_path / "quickstart.py"
    script.write_text("\n\n".join(blocks))
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "sweep-7/lr=0.1/seed=3/metrics default" in proc.stdout
    assert "8 results written" in proc.stdout
    assert (tmp_path / "results-dir" / "sweep-8" / "seed=0" / "metrics.json").is_file()
