-- booty-queue's SQLite store, version 4: bookmarks, how far a submitter that reads work from elsewhere
-- has got (booty's recovery of webhook deliveries GitHub could not deliver keeps its point here, one row
-- per webhook), so a restart resumes from it.

CREATE TABLE booty_bookmarks (
    name   TEXT PRIMARY KEY,
    -- Unix milliseconds.
    at_ms  INTEGER NOT NULL
);
