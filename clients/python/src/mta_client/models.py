"""The service's records as dataclasses: uploads, jobs and their progress.

Fields the service adds later are kept in ``raw`` rather than refused, so an older client
keeps working against a newer service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import JobFailedError, Problem

__all__ = ["Upload", "Progress", "JobError", "JobRecord", "JobState", "TERMINAL_STATES"]

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Upload:
    """A stored upload (``POST /v1/uploads``)."""

    upload_id: str
    tenant: str
    size_bytes: int
    sha256: str
    created_at: str
    #: The object's key in the store, for an object the tenant imported (``POST /v1/uploads/import``).
    imported_from: str | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Upload:
        imported_from = value.get("imported_from")
        return cls(
            upload_id=str(value["upload_id"]),
            tenant=str(value["tenant"]),
            size_bytes=int(value["size_bytes"]),
            sha256=str(value["sha256"]),
            created_at=str(value["created_at"]),
            imported_from=None if imported_from is None else str(imported_from),
        )


@dataclass(frozen=True)
class Progress:
    splits_done: int = 0
    splits_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0
    rows: int = 0

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Progress:
        value = value or {}
        return cls(**{name: int(value.get(name) or 0) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class JobError:
    """Why a job failed: the engine's code, message and located problems."""

    code: str
    message: str
    details: list[Problem] = field(default_factory=list)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> JobError:
        return cls(
            code=str(value.get("code", "internal")),
            message=str(value.get("message", "")),
            details=[Problem.from_json(d) for d in value.get("details") or []],
        )


@dataclass(frozen=True)
class JobRecord:
    """A job as ``GET /v1/jobs/{id}`` shows it."""

    id: str
    state: JobState
    tenant: str
    upload_id: str
    spec: dict[str, Any]
    progress: Progress
    created_at: str
    updated_at: str
    stage: str | None = None
    kind: str | None = None
    error: JobError | None = None
    cached_from: str | None = None
    finished_at: str | None = None
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> JobRecord:
        error = value.get("error")
        return cls(
            id=str(value["id"]),
            state=value["state"],
            tenant=str(value.get("tenant", "")),
            upload_id=str(value.get("upload_id", "")),
            spec=dict(value.get("spec") or {}),
            progress=Progress.from_json(value.get("progress")),
            created_at=str(value.get("created_at", "")),
            updated_at=str(value.get("updated_at", "")),
            stage=value.get("stage"),
            kind=value.get("kind"),
            error=JobError.from_json(error) if isinstance(error, Mapping) else None,
            cached_from=value.get("cached_from"),
            finished_at=value.get("finished_at"),
            request_id=value.get("request_id"),
            raw=dict(value),
        )

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES

    def failure(self) -> JobFailedError | None:
        """The job's error as an exception, when it failed."""
        if self.state != "failed":
            return None
        error = self.error or JobError("internal", "the job failed")
        return JobFailedError(self.id, error.code, error.message, error.details, self.request_id)

    def describe(self) -> str:
        """One line for a progress bar: state, stage and counts."""
        p = self.progress
        parts = [self.state if self.stage is None else f"{self.state}/{self.stage}"]
        if p.splits_total:
            parts.append(f"splits {p.splits_done}/{p.splits_total}")
        if p.rows:
            parts.append(f"rows {p.rows:,}")
        return " ".join(parts)
