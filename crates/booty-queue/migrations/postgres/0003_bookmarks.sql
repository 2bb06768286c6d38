-- booty-queue's PostgreSQL store, version 3: bookmarks, how far a submitter that reads work from
-- elsewhere has got (booty's recovery of webhook deliveries GitHub could not deliver keeps its point
-- here, one row per webhook), shared by every process, so whichever process recovers next resumes from it.

CREATE TABLE booty_bookmarks (
    name   TEXT PRIMARY KEY,
    -- Unix milliseconds.
    at_ms  BIGINT NOT NULL
);
