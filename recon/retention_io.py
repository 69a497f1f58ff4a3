"""Inputs and results of the retention sweep and its activities: one frozen dataclass in, one
out, plain JSON values only (they travel through Temporal's history)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recon.retention import RetentionPolicy


@dataclass(frozen=True)
class TargetCutoff:
    name: str
    cutoff: str  # RFC 3339: the run's start (database time) minus the target's keep_s


@dataclass(frozen=True)
class SweepInput:
    """Input of RetentionSweepWorkflow; the resume fields are set only by continue-as-new."""

    policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    run_id: str | None = None
    cutoffs: list[TargetCutoff] = field(default_factory=list)
    next_target: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    # Batches per workflow run before it continues as new (keeps each history small).
    max_batches_per_run: int = 500


@dataclass(frozen=True)
class StartSweepInput:
    run_id: str
    workflow_id: str
    policy: RetentionPolicy


@dataclass(frozen=True)
class StartSweepResult:
    cutoffs: list[TargetCutoff]


@dataclass(frozen=True)
class SweepBatchInput:
    run_id: str
    target: str
    cutoff: str
    policy: RetentionPolicy


@dataclass(frozen=True)
class SweepBatchResult:
    removed: int
    batch: int  # the target's batch size: fewer removed means the target is done


@dataclass(frozen=True)
class FinishSweepInput:
    run_id: str
    status: str  # completed | failed
    error: str | None = None


@dataclass(frozen=True)
class SweepProgress:
    """What the workflow's `progress` query answers (the run record has the same, committed)."""

    run_id: str | None
    target: str | None
    removed: dict[str, int]
    batches: int
    done: bool
