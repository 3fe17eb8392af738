"""A sweep's job record (OUT/jobs/<id>.json): `SweepJobRecord`, the job, where and how long it ran,
and its result as the typed record of its kind (an optimize job's report.json with its strategy,
a compare job's comparison.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .comparison import ComparisonRecord
from .jsonfile import read_json
from .optimize import OptimizeRecord

FORMAT_VERSION = 1
Json = dict[str, Any]


@dataclass(frozen=True)
class SweepJobRecord:
    """A finished sweep job: `id`, `kind`, `params`, `run` (host, pid, versions, wall_time_s), `result`."""

    id: str
    kind: str
    """`optimize` or `compare`."""
    params: Json
    """The job's parameters (`sweep.spec.Job.params`)."""
    run: Json
    result: OptimizeRecord | ComparisonRecord
    strategy: Json | None = None
    """An optimize job's strategy (strategy.json's object), kept in its result."""
    version: int = FORMAT_VERSION

    @property
    def wall_time_s(self) -> float:
        """How long the job ran (nan when its worker did not say)."""
        return float(self.run.get("wall_time_s", float("nan")))

    @property
    def optimize(self) -> OptimizeRecord | None:
        return self.result if isinstance(self.result, OptimizeRecord) else None

    @property
    def comparison(self) -> ComparisonRecord | None:
        return self.result if isinstance(self.result, ComparisonRecord) else None

    def to_json(self) -> Json:
        result = self.result.to_json()
        if self.strategy is not None:
            result["strategy"] = self.strategy
        return {"id": self.id, "kind": self.kind, "params": self.params, "run": self.run, "result": result}

    @classmethod
    def from_json(cls, d: Json) -> SweepJobRecord:
        r, run = d["result"], d.get("run", {})
        if d["kind"] == "optimize":
            return cls(d["id"], d["kind"], d["params"], run, OptimizeRecord.from_json(r), r.get("strategy"))
        return cls(d["id"], d["kind"], d["params"], run, ComparisonRecord.from_json(r))


def read_job_record(path: str | Path) -> SweepJobRecord:
    """A finished job's record from its file."""
    return SweepJobRecord.from_json(read_json(Path(path)))


@dataclass(frozen=True)
class SweepManifest:
    """sweep.json: the sweep's name, its file, the weightprog version and every job (id, kind, params, files)."""

    name: str
    source: str
    weightprog_version: str
    jobs: tuple[Json, ...]

    @property
    def job_ids(self) -> list[str]:
        return [j["id"] for j in self.jobs]

    @property
    def kinds(self) -> list[str]:
        return sorted({j.get("kind", "") for j in self.jobs})

    def to_json(self) -> Json:
        return {"name": self.name, "source": self.source, "weightprog_version": self.weightprog_version,
                "jobs": list(self.jobs)}

    @classmethod
    def from_json(cls, d: Json) -> SweepManifest:
        return cls(d.get("name", ""), d.get("source", ""), d.get("weightprog_version", "unknown"),
                   tuple(d.get("jobs", ())))


def job_error(path: str | Path) -> str:
    """The error of a job's last failed try (its jobs/<id>.error.json)."""
    return str(read_json(Path(path)).get("error", ""))
