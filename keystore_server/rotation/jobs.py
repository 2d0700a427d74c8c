"""The persisted state of re-wrap jobs and of pending retirement approvals.

A job's cursor and counters are updated in the same transaction as the rows
of its batch, so after kill -9 the job resumes exactly after the last
committed batch. Rows are selected by "version differs from the target", so
even a lost cursor re-wraps no row twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from splitkey.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS rewrap_jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target_version INTEGER NOT NULL,
    -- "running", "done" or "failed".
    state TEXT NOT NULL,
    rows_total INTEGER NOT NULL,
    rows_done INTEGER NOT NULL,
    -- Last record_id of the last committed batch of the current pass.
    cursor TEXT NOT NULL,
    pass INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    max_rows_per_second INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rewrap_jobs_by_kind ON rewrap_jobs (kind, started_at_ms);
-- A retirement proposed by one security identity, waiting for a second one.
-- keystore_server.rotation.approvals checks the MAC of every row it reads.
CREATE TABLE IF NOT EXISTS retire_approvals (
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_at_ms INTEGER NOT NULL,
    -- HMAC-SHA256 under the "access-mac" key of KEK-A version mac_version.
    mac_version INTEGER NOT NULL DEFAULT 0,
    mac BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (kind, version)
);
"""

RUNNING = "running"
DONE = "done"
FAILED = "failed"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Job:
    job_id: str
    kind: str
    target_version: int
    state: str
    rows_total: int
    rows_done: int
    cursor: str
    pass_number: int
    batch_size: int
    max_rows_per_second: int
    started_at_ms: int
    updated_at_ms: int
    last_error: str

    @classmethod
    def from_row(cls, found) -> "Job":
        return cls(
            job_id=found["job_id"], kind=found["kind"], target_version=found["target_version"],
            state=found["state"], rows_total=found["rows_total"], rows_done=found["rows_done"],
            cursor=found["cursor"], pass_number=found["pass"], batch_size=found["batch_size"],
            max_rows_per_second=found["max_rows_per_second"], started_at_ms=found["started_at_ms"],
            updated_at_ms=found["updated_at_ms"], last_error=found["last_error"],
        )


class JobStore:
    def __init__(self, db: Database):
        self.db = db
        db.connection().executescript(SCHEMA)

    def create(self, connection, kind: str, target: int, rows_total: int, batch_size: int, rate: int) -> Job:
        """Insert a running job inside the caller's write transaction."""
        at = now_ms()
        job = Job(uuid.uuid4().hex, kind, target, RUNNING, rows_total, 0, "", 1, batch_size, rate, at, at, "")
        connection.execute(
            "INSERT INTO rewrap_jobs (job_id, kind, target_version, state, rows_total, rows_done, cursor, pass, "
            "batch_size, max_rows_per_second, started_at_ms, updated_at_ms, last_error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.job_id, kind, target, RUNNING, rows_total, 0, "", 1, batch_size, rate, at, at, ""),
        )
        return job

    @staticmethod
    def running(connection, kind: str | None = None) -> list[Job]:
        query = "SELECT * FROM rewrap_jobs WHERE state = ?"
        parameters: tuple = (RUNNING,)
        if kind is not None:
            query += " AND kind = ?"
            parameters += (kind,)
        return [Job.from_row(found) for found in connection.execute(query + " ORDER BY started_at_ms", parameters)]

    def get(self, job_id: str) -> Job | None:
        found = self.db.connection().execute("SELECT * FROM rewrap_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job.from_row(found) if found else None

    def latest(self, kind: str) -> Job | None:
        found = self.db.connection().execute(
            "SELECT * FROM rewrap_jobs WHERE kind = ? ORDER BY started_at_ms DESC, rowid DESC LIMIT 1", (kind,)
        ).fetchone()
        return Job.from_row(found) if found else None

    @staticmethod
    def save(connection, job: Job) -> None:
        job.updated_at_ms = now_ms()
        connection.execute(
            "UPDATE rewrap_jobs SET target_version = ?, state = ?, rows_total = ?, rows_done = ?, cursor = ?, "
            "pass = ?, updated_at_ms = ?, last_error = ? WHERE job_id = ?",
            (job.target_version, job.state, job.rows_total, job.rows_done, job.cursor, job.pass_number,
             job.updated_at_ms, job.last_error, job.job_id),
        )

    def save_now(self, job: Job) -> None:
        with self.db.write() as connection:
            self.save(connection, job)
