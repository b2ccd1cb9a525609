"""``python -m bench claims``: how fast a sweep's workers claim free ids, and how fast missing() reads.

Sync manager on the reference server (and the file store for comparison): ``claim_each`` over
free ids (the claims are released after the timing), and ``missing`` over ids of which half
are stored.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model


class Cell(BaseModel):
    x: int


def _rates(rm: ResultsManager, claims: int, ids: int) -> tuple[float, float]:
    grid = [f"claims/{i:07d}" for i in range(claims)]
    started = time.perf_counter()
    taken = list(rm.claim_each(grid, lease=600))  # each claim: its insert and its look for the result
    claim_rate = len(taken) / (time.perf_counter() - started)
    assert len(taken) == claims
    for claim in taken:
        claim.release()
    wanted = [f"missing/{i:07d}" for i in range(ids)]
    rm.set_many([(rid, Cell(x=i)) for i, rid in enumerate(wanted[::2])], SetBehavior.OVERWRITE)
    started = time.perf_counter()
    left = rm.missing(wanted)
    seconds = time.perf_counter() - started
    assert len(left) == ids // 2
    return claim_rate, seconds


def claims(uri: str, database: str, count: int, ids: int, label: str, out: Path) -> int:
    register_model(Cell)
    MongoClient(uri).drop_database(database)
    server = ResultsManager(backend=MongoBackend(uri, database=database))
    server_claims, server_missing = _rates(server, count, ids)
    server.clear()
    with tempfile.TemporaryDirectory() as tmp:
        files_claims, files_missing = _rates(ResultsManager(tmp), count // 10, ids // 10)
    rows = [
        f"Claims and missing(), sync manager, one run ({label}; the file store on local disk, a tenth of the ids):",
        "",
        "| store | claim_each, free ids | missing() |",
        "|---|---:|---:|",
        f"| {label} | {server_claims:,.0f} claims/s over {count:,} ids | {server_missing:.2f} s over {ids:,} ids |",
        f"| file store | {files_claims:,.0f} claims/s over {count // 10:,} ids | "
        f"{files_missing:.2f} s over {ids // 10:,} ids |",
    ]
    text = "\n".join(rows) + "\n"
    (out / "claims.md").write_text(text)
    print(text)
    return 0
