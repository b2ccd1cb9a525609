"""The public API against the last release: no name, parameter or default that users rely on disappears.

    python scripts/api_check.py                   # compare the package with the baselines in api/
    python scripts/api_check.py --snapshot TAG    # record the API of a release tag (git) as the baseline
    python scripts/api_check.py --unreleased REF  # record a commit's API as what the next release promises

The baselines are committed, so the check needs no tags in the clone it runs in. Only what
``mongo_results`` exports (its ``__all__``) is the promise; the modules behind it may move.
What was added since the release and promised already (the changelog's Unreleased part) is
checked against ``unreleased``, so it cannot go either before the next release.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent
RELEASE = "v0.2.0"
BASELINE = ROOT / "api" / f"{RELEASE}.json.gz"
UNRELEASED = ROOT / "api" / "unreleased.json.gz"


def snapshot(tag: str, path: Path = BASELINE) -> None:
    """Write the API of ``tag`` as a baseline."""
    package = griffe.load_git("mongo_results", ref=tag, repo=ROOT)
    text = json.dumps(package, cls=griffe.JSONEncoder, full=False, sort_keys=True)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{path.relative_to(ROOT)}: the API of {tag}")


def load_baseline(path: Path = BASELINE) -> griffe.Module:
    package: griffe.Module = json.loads(gzip.decompress(path.read_bytes()), object_hook=griffe.json_decoder)
    collection = griffe.ModulesCollection()
    collection["mongo_results"] = package  # aliases resolve within it
    return package


def breakages(old: griffe.Module, new: griffe.Module) -> list[str]:
    """What a user of ``old``'s exports would find broken in ``new``."""
    found = []
    exported = [str(name) for name in old.exports or ()]
    for name in exported:
        if name not in (new.exports or ()) or name not in new.members:
            found.append(f"mongo_results.{name}: no longer exported")
            continue
        found += [b.explain() for b in griffe.find_breaking_changes(old[name], new[name])]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", metavar="TAG", help="record the API of TAG as the baseline")
    parser.add_argument("--unreleased", metavar="REF", help="record the API of REF as what is promised since")
    parser.add_argument("--package", default=str(ROOT), help="the directory holding mongo_results")
    args = parser.parse_args(argv)
    if args.snapshot:
        snapshot(args.snapshot)
        return 0
    if args.unreleased:
        snapshot(args.unreleased, UNRELEASED)
        return 0
    current = griffe.load("mongo_results", search_paths=[args.package], try_relative_path=False)
    total = 0
    for name, path in ((RELEASE, BASELINE), ("unreleased", UNRELEASED)):
        if not path.exists():
            continue
        found = breakages(load_baseline(path), current)
        for line in found:
            print(line)
        print(f"API against {name}: {len(found)} breaking change(s)")
        total += len(found)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
