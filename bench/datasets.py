"""The benchmark's models and documents: small flat, large flat and nested.

Shaped after the ODM benchmarking specification's datasets (a small flat
document, the 250-field ``large_doc.json``, a nested document), generated
from a fixed seed so every contender stores byte-identical data.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, create_model

from mongo_results import register_model


class SmallFlat(BaseModel):
    name: str
    status: str
    host: str
    seed: int
    step: int
    epochs: int
    loss: float
    accuracy: float
    lr: float
    converged: bool


class Optimizer(BaseModel):
    name: str
    lr: float
    betas: list[float]
    weight_decay: float


class DataConfig(BaseModel):
    dataset: str
    batch_size: int
    shuffle: bool
    augment: list[str]


class Config(BaseModel):
    optimizer: Optimizer
    data: DataConfig
    layers: list[int]


class Epoch(BaseModel):
    epoch: int
    loss: float
    accuracy: float
    seconds: float


class Nested(BaseModel):
    name: str
    config: Config
    history: list[Epoch]
    tags: list[str]


# 125 strings and 125 integers, as in the specification's large_doc.json.
LargeFlat = create_model(  # type: ignore[call-overload]
    "LargeFlat", **{f"field{i}": (str if i <= 125 else int, ...) for i in range(1, 251)}
)

# "find by field": a range on one indexed field that about a tenth of each dataset matches.
FIELDS: dict[str, tuple[str, float]] = {
    "small": ("step", 100_000),
    "large": ("field126", 100),
    "nested": ("config.optimizer.lr", 0.001),
}
# Each model in a namespace of its own, as each hand-written contender has a collection of its own:
# every index a namespace's models ask for is kept up on every write to it (three indexes made a
# bulk insert of small results on the reference server twice as slow as one).
for _kind, _model in (("small", SmallFlat), ("large", LargeFlat), ("nested", Nested)):
    register_model(_model, namespace=_kind, indexes=[FIELDS[_kind][0]])


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789#$@&*") for _ in range(n))


def _small(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "name": f"run-{i}",
        "status": rng.choice(["done", "failed", "diverged"]),
        "host": f"node-{rng.randrange(64):02d}",
        "seed": i,
        "step": rng.randrange(10**6),
        "epochs": rng.randrange(1, 200),
        "loss": rng.random(),
        "accuracy": rng.random(),
        "lr": rng.choice([0.1, 0.01, 0.001]),
        "converged": rng.random() > 0.5,
    }


def _large(rng: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {f"field{k}": _text(rng, 30) for k in range(1, 126)}
    doc.update({f"field{k}": rng.randrange(1000) for k in range(126, 251)})
    return doc


def _nested(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "name": f"run-{i}",
        "config": {
            "optimizer": {"name": "adamw", "lr": rng.random() / 100, "betas": [0.9, 0.999], "weight_decay": 0.01},
            "data": {"dataset": "cifar10", "batch_size": 128, "shuffle": True, "augment": ["flip", "crop"]},
            "layers": [rng.randrange(16, 512) for _ in range(6)],
        },
        "history": [
            {"epoch": e, "loss": rng.random(), "accuracy": rng.random(), "seconds": rng.random() * 60}
            for e in range(12)
        ],
        "tags": ["sweep", f"seed={i}", rng.choice(["gpu", "cpu"])],
    }


@dataclass(frozen=True)
class Dataset:
    """One kind of model, as ``count`` (id, model) pairs in ``groups`` prefixes."""

    kind: str
    model: type[BaseModel]
    pairs: list[tuple[str, BaseModel]]
    nbytes: int  # the documents as strict JSON: the specification's measure for MB/s
    groups: list[str]

    @property
    def ids(self) -> list[str]:
        return [rid for rid, _ in self.pairs]

    @property
    def field(self) -> str:
        """The indexed field "find by field" asks about."""
        return FIELDS[self.kind][0]

    @property
    def where(self) -> dict[str, Any]:
        """The "find by field" query, over the model's fields."""
        field, below = FIELDS[self.kind]
        return {field: {"$lt": below}}

    def matching(self) -> list[tuple[str, BaseModel]]:
        """The pairs the "find by field" query matches."""
        field, below = FIELDS[self.kind]

        def value(model: Any) -> Any:
            for part in field.split("."):
                model = getattr(model, part)
            return model

        return sorted(((rid, m) for rid, m in self.pairs if value(m) < below), key=lambda pair: pair[0])  # id order


KINDS = {"small": (SmallFlat, _small), "large": (LargeFlat, _large), "nested": (Nested, _nested)}


def dataset(kind: str, count: int, groups: int) -> Dataset:
    model, make = KINDS[kind]
    rng = random.Random(f"{kind}/{count}")
    docs = [make(rng, i) for i in range(count)]
    prefixes = [f"bench/{kind}/g{g:02d}" for g in range(groups)]
    pairs = [(f"{prefixes[i % groups]}/run-{i:06d}", model.model_validate(doc)) for i, doc in enumerate(docs)]
    nbytes = sum(len(json.dumps(doc).encode()) for doc in docs)
    return Dataset(kind, model, pairs, nbytes, prefixes)
