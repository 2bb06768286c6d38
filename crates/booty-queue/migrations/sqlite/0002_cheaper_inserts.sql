-- booty-queue's SQLite store, version 2: cheaper inserts (`src/store/sqlite/writer.rs`).
--
-- - The writer remembers each stored job's delivery and counts it as waiting itself, with one statement
--   for its whole batch: a trigger per inserted row made SQLite copy every row, payload and all, to a
--   temporary table first. The insert triggers are gone; the update and delete triggers stay.
-- - `booty_deliveries` alone answers "is this delivery known?", for stored jobs too: the writer finds a
--   stored job through its delivery's row, and the clean-up keeps the row of every stored job. The
--   `UNIQUE` index on `booty_jobs.delivery_id` is gone: every insert wrote one more index page to the log.
--   (SQLite drops a constraint by copying the table.)

DROP TRIGGER booty_jobs_remember;
DROP TRIGGER booty_jobs_count_insert;

-- Version 1 could forget the delivery of a job still stored (a job queued longer than both windows).
INSERT OR IGNORE INTO booty_deliveries (delivery_id, job_id, accepted_at_ms)
SELECT delivery_id, job_id, created_at_ms FROM booty_jobs ORDER BY seq;

CREATE TABLE booty_jobs_v2 (
    seq             INTEGER PRIMARY KEY,
    job_id          TEXT NOT NULL UNIQUE,
    -- A delivery creates at most one job: booty_deliveries.delivery_id is unique, and holds the row of
    -- every stored job.
    delivery_id     TEXT NOT NULL,
    issue_number    INTEGER,
    repository      TEXT,
    lane            TEXT,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'abandoned')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    payload         TEXT,
    created_at_ms   INTEGER NOT NULL,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    retry_at_ms     INTEGER,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    error           TEXT,
    finished_seq    INTEGER
) STRICT;
INSERT INTO booty_jobs_v2 SELECT * FROM booty_jobs;
-- Dropping the table drops its indexes and triggers (and fires none).
DROP TABLE booty_jobs;
ALTER TABLE booty_jobs_v2 RENAME TO booty_jobs;

CREATE INDEX booty_jobs_waiting ON booty_jobs (seq) WHERE state IN ('queued', 'retrying');
CREATE INDEX booty_jobs_lanes ON booty_jobs (lane, seq) WHERE state IN ('queued', 'running', 'retrying');
CREATE INDEX booty_jobs_running ON booty_jobs (lease_until_ms) WHERE state = 'running';
CREATE INDEX booty_jobs_finished ON booty_jobs (finished_seq) WHERE finished_seq IS NOT NULL;

CREATE TRIGGER booty_jobs_count_update AFTER UPDATE OF state ON booty_jobs
WHEN (OLD.state IN ('queued', 'retrying')) <> (NEW.state IN ('queued', 'retrying'))
BEGIN
    UPDATE booty_counts
       SET waiting = waiting + CASE WHEN NEW.state IN ('queued', 'retrying') THEN 1 ELSE -1 END;
END;

CREATE TRIGGER booty_jobs_count_delete AFTER DELETE ON booty_jobs
WHEN OLD.state IN ('queued', 'retrying')
BEGIN
    UPDATE booty_counts SET waiting = waiting - 1;
END;
