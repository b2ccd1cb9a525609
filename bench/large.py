"""``python -m bench large``: results over 16 MiB, written and read back whole on every store."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mongo_results import AsyncMongoBackend, AsyncResultsManager, MongoBackend, ResultsManager

MIB = 1024 * 1024


class Blob(BaseModel):
    """A result with small fields and one large one (an image, a trace)."""

    name: str
    loss: float
    payload: bytes


def _round_trip(rm: ResultsManager[Any], blob: Blob) -> tuple[float, float]:
    start = time.perf_counter()
    rm.set("large/blob", blob)
    written = time.perf_counter()
    back = rm.get("large/blob", Blob)
    read = time.perf_counter()
    if back != blob:
        raise AssertionError(f"{len(blob.payload) // MIB} MiB came back different")
    rm.delete("large/blob")
    return written - start, read - written


def _async_round_trip(uri: str, database: str, blob: Blob) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        rm: AsyncResultsManager[Any] = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=database))
        try:
            start = time.perf_counter()
            await rm.set("large/blob", blob)
            written = time.perf_counter()
            back = await rm.get("large/blob", Blob)
            read = time.perf_counter()
            if back != blob:
                raise AssertionError(f"{len(blob.payload) // MIB} MiB came back different")
            await rm.clear()
            return written - start, read - written
        finally:
            await rm.close()

    return asyncio.run(main())


def large(uri: str, database: str, sizes: list[int], label: str, out: Path) -> int:
    """Set and get one result of each size (MiB) on each store; a table of the times."""
    root = tempfile.mkdtemp(prefix="mongo-results-large-")
    stores: dict[str, Any] = {
        "file store": lambda: ResultsManager(Path(root) / "files"),
        "embedded": lambda: ResultsManager("mongomock://localhost/large"),
        f"{label} (MongoClient)": lambda: ResultsManager(backend=MongoBackend(uri, database=database)),
        f"{label} (AsyncMongoClient)": None,
    }
    rows = [
        f"One result of `name`, `loss` and a `payload` of N MiB of bytes, set then got back (and compared) "
        f"on each store, one round each; {os.cpu_count()} cores. Command: "
        f"`python -m bench large --sizes {','.join(map(str, sizes))}`.",
        "",
        "| store | size | set | get | set MB/s | get MB/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    try:
        for name, make in stores.items():
            for size in sizes:
                blob = Blob(name="scan", loss=0.1, payload=os.urandom(MIB) * size)
                if make is None:
                    w, r = _async_round_trip(uri, database, blob)
                else:
                    rm = make()
                    try:
                        w, r = _round_trip(rm, blob)
                    finally:
                        rm.clear()
                        rm.close()
                mb = size * MIB / 1e6
                rows.append(f"| {name} | {size} MiB | {w:.2f} s | {r:.2f} s | {mb / w:.0f} | {mb / r:.0f} |")
                print(rows[-1], file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "large.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0
