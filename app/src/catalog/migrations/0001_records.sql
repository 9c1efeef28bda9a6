-- The audit catalog, version 1: one hash-chained table of records (see catalog/chain.rs for
-- the exact bytes hashed). `body` is the whole ops::Record as JSON; the other columns repeat
-- what queries filter on, and `verify` checks that they agree with the body.
CREATE TABLE records (
    seq        INTEGER PRIMARY KEY,
    time_ns    INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    project    TEXT,
    repository TEXT,
    run_id     TEXT,
    ok         INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    prev       BLOB    NOT NULL,
    hash       BLOB    NOT NULL
);
CREATE INDEX records_by_time ON records (time_ns);
CREATE INDEX records_by_kind ON records (kind, time_ns);
CREATE INDEX records_by_project ON records (project, kind, time_ns);
CREATE INDEX records_by_repository ON records (repository, kind, time_ns);
CREATE INDEX records_by_run ON records (run_id);
