"""Run a command with two CPU-bound processes beside it (``make test-loaded``): the suite on a busy machine.

    python scripts/loaded.py COMMAND [ARG ...]

The load ends with the command, whose exit code is this script's.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys


def burn() -> None:
    """Keep one core busy until stopped."""
    n = 0
    while True:
        n = (n * 1103515245 + 12345) % 2**31


def main(command: list[str]) -> int:
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(2)]
    for burner in burners:
        burner.start()
    try:
        return subprocess.call(command)
    finally:
        for burner in burners:
            burner.terminate()
            burner.join()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
