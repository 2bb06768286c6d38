-- booty-queue's SQLite store, version 1: jobs, remembered deliveries, and the count of waiting jobs.
-- The columns of booty_jobs mean what they mean in the PostgreSQL store (migrations/postgres/), so both
-- stores read rows with the same code. Times are unix milliseconds (the engine's `Timestamp`):
-- `datetime(created_at_ms / 1000, 'unixepoch')` reads them.

CREATE TABLE booty_jobs (
    -- Arrival order: claims take the earliest runnable job, lanes run in this order.
    seq             INTEGER PRIMARY KEY,
    job_id          TEXT NOT NULL UNIQUE,
    -- A delivery creates at most one job: this constraint is the dedupe for stored jobs.
    delivery_id     TEXT NOT NULL UNIQUE,
    issue_number    INTEGER,
    repository      TEXT,
    -- `Job::ordering_key()`: jobs with the same lane run one at a time, in `seq` order. NULL: no lane.
    lane            TEXT,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'abandoned')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The embedder's payload as JSON text; NULL once the job is final.
    payload         TEXT,
    created_at_ms   INTEGER NOT NULL,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    retry_at_ms     INTEGER,
    -- Who holds a running job and until when (one process uses the file, but the engine's workers are
    -- fenced from each other by the same lease rules as in the shared store).
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    error           TEXT,
    -- The order jobs became final in: the oldest finished are dropped first.
    finished_seq    INTEGER
) STRICT;

-- Claim candidates in arrival order. (Partial indexes: a query uses one only when its WHERE repeats
-- the index's condition word for word, which the store's queries do.)
CREATE INDEX booty_jobs_waiting ON booty_jobs (seq) WHERE state IN ('queued', 'retrying');
-- "Is an earlier job of this lane unfinished?"
CREATE INDEX booty_jobs_lanes ON booty_jobs (lane, seq) WHERE state IN ('queued', 'running', 'retrying');
-- Running jobs, for leases and recovery.
CREATE INDEX booty_jobs_running ON booty_jobs (lease_until_ms) WHERE state = 'running';
-- The finished-job retention bound.
CREATE INDEX booty_jobs_finished ON booty_jobs (finished_seq) WHERE finished_seq IS NOT NULL;

-- Deliveries remembered for dedupe after their job is gone: a row stays while its job is stored, and
-- afterwards while it is among the newest `dedupe_capacity` or younger than the retention age.
CREATE TABLE booty_deliveries (
    -- Acceptance order; a delivery accepted again (after it was forgotten) gets a new one.
    seq             INTEGER PRIMARY KEY,
    delivery_id     TEXT NOT NULL UNIQUE,
    job_id          TEXT NOT NULL,
    accepted_at_ms  INTEGER NOT NULL
) STRICT;

-- Every stored job remembers its delivery, in the statement that stores it.
CREATE TRIGGER booty_jobs_remember AFTER INSERT ON booty_jobs
BEGIN
    INSERT OR REPLACE INTO booty_deliveries (delivery_id, job_id, accepted_at_ms)
    VALUES (NEW.delivery_id, NEW.job_id, NEW.created_at_ms);
END;

-- How many jobs wait (`queued` or `retrying`), kept by triggers so the capacity check of an insert
-- reads one row instead of counting the backlog.
CREATE TABLE booty_counts (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    waiting  INTEGER NOT NULL CHECK (waiting >= 0)
) STRICT;
INSERT INTO booty_counts (id, waiting) VALUES (1, 0);

CREATE TRIGGER booty_jobs_count_insert AFTER INSERT ON booty_jobs
WHEN NEW.state IN ('queued', 'retrying')
BEGIN
    UPDATE booty_counts SET waiting = waiting + 1;
END;

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
