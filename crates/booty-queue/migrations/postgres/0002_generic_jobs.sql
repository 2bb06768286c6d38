-- booty-queue's PostgreSQL store, version 2: a job's identity is its submitter's (a dedupe key, a lane,
-- a kind and metadata), no longer GitHub's; jobs can be cancelled and keep what their last attempt
-- printed. Every process of the queue must run this version or a later one: stop them all, then start
-- the new version (the first to connect migrates, under the advisory lock).
--
-- - `booty_jobs.delivery_id` becomes `dedupe_key`; `booty_deliveries` becomes `booty_dedupe_keys`, its
--   `delivery_id` `dedupe_key`. A delivery already remembered stays a duplicate.
-- - `issue_number` and `repository` go into `metadata`, a JSON object, next to the delivery id, as
--   booty-service now writes them (absent values left out). `kind` is `issue` for a job about an
--   issue, `job` otherwise. `lane` and `job_id` stay as they were.
-- - New columns: `output` (what the job's last attempt printed, at most 64 KiB), `cancel_reason` (set on
--   a running job asked to stop), and the final state `cancelled`.

ALTER TABLE booty_jobs RENAME COLUMN delivery_id TO dedupe_key;
ALTER TABLE booty_jobs RENAME CONSTRAINT booty_jobs_delivery_id_key TO booty_jobs_dedupe_key_key;
ALTER TABLE booty_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'job';
ALTER TABLE booty_jobs ADD COLUMN metadata JSON NOT NULL DEFAULT '{}';
ALTER TABLE booty_jobs ADD COLUMN output TEXT;
ALTER TABLE booty_jobs ADD COLUMN cancel_reason TEXT;

-- `UPDATE OF state` only: the notification trigger stays quiet.
UPDATE booty_jobs
   SET kind = CASE WHEN issue_number IS NULL THEN 'job' ELSE 'issue' END,
       metadata = json_strip_nulls(json_build_object('issue_number', issue_number,
                                                     'repository', repository,
                                                     'delivery_id', dedupe_key));
ALTER TABLE booty_jobs ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE booty_jobs DROP COLUMN issue_number;
ALTER TABLE booty_jobs DROP COLUMN repository;

ALTER TABLE booty_jobs DROP CONSTRAINT booty_jobs_state_check;
ALTER TABLE booty_jobs ADD CONSTRAINT booty_jobs_state_check
    CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', 'abandoned'));

ALTER TABLE booty_deliveries RENAME TO booty_dedupe_keys;
ALTER TABLE booty_dedupe_keys RENAME COLUMN delivery_id TO dedupe_key;
