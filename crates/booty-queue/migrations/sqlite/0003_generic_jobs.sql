-- booty-queue's SQLite store, version 3: a job's identity is its submitter's (a dedupe key, a lane, a
-- kind and metadata), no longer GitHub's; jobs can be cancelled and keep what their last attempt printed.
--
-- - `booty_jobs.delivery_id` becomes `dedupe_key`; `booty_deliveries` becomes `booty_dedupe_keys`, its
--   `delivery_id` `dedupe_key`. A delivery already remembered stays a duplicate.
-- - `issue_number` and `repository` go into `metadata`, a JSON object, next to the delivery id, in the
--   order booty-service writes them (`{"issue_number":7,"repository":"octo/repo","delivery_id":"..."}`,
--   absent values left out). `kind` is `issue` for a job about an issue, `job` otherwise. `lane` and
--   `job_id` stay as they were (`{repository}#{issue}` and `{issue}-{delivery}`, which booty-service
--   still gives).
-- - New columns: `output` (what the job's last attempt printed, at most 64 KiB), `cancel_reason` (set on
--   a running job asked to stop), and the final state `cancelled`. (SQLite changes a CHECK constraint by
--   copying the table.)

CREATE TABLE booty_jobs_v3 (
    -- Arrival order: claims take the earliest runnable job, lanes run in this order.
    seq             INTEGER PRIMARY KEY,
    job_id          TEXT NOT NULL UNIQUE,
    -- A dedupe key creates at most one job: booty_dedupe_keys.dedupe_key is unique, and holds the row of
    -- every stored job.
    dedupe_key      TEXT NOT NULL,
    -- Jobs with the same lane run one at a time, in `seq` order. NULL: no lane.
    lane            TEXT,
    kind            TEXT NOT NULL,
    -- A JSON object of strings and integers, in the submitter's order.
    metadata        TEXT NOT NULL DEFAULT '{}',
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', 'abandoned')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The embedder's payload as JSON text; NULL once the job is final.
    payload         TEXT,
    created_at_ms   INTEGER NOT NULL,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    retry_at_ms     INTEGER,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    error           TEXT,
    output          TEXT,
    cancel_reason   TEXT,
    -- The order jobs became final in: the oldest finished are dropped first.
    finished_seq    INTEGER
) STRICT;

INSERT INTO booty_jobs_v3
    (seq, job_id, dedupe_key, lane, kind, metadata, state, attempts, payload, created_at_ms,
     started_at_ms, finished_at_ms, retry_at_ms, lease_owner, lease_until_ms, error, finished_seq)
SELECT seq, job_id, delivery_id, lane,
       CASE WHEN issue_number IS NULL THEN 'job' ELSE 'issue' END,
       -- json_patch leaves out the NULL members, and keeps the others in order.
       json_patch('{}', json_object('issue_number', issue_number, 'repository', repository,
                                    'delivery_id', delivery_id)),
       state, attempts, payload, created_at_ms, started_at_ms, finished_at_ms, retry_at_ms,
       lease_owner, lease_until_ms, error, finished_seq
  FROM booty_jobs;
-- Dropping the table drops its indexes and triggers (and fires none).
DROP TABLE booty_jobs;
ALTER TABLE booty_jobs_v3 RENAME TO booty_jobs;

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

ALTER TABLE booty_deliveries RENAME TO booty_dedupe_keys;
ALTER TABLE booty_dedupe_keys RENAME COLUMN delivery_id TO dedupe_key;
