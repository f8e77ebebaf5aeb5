-- Organization secrets (issue 24, reference §3.9): write-only values for templates
-- (`{{ .secrets.NAME }}`). `value_sealed` is the value sealed under the master key together
-- with its organization and name, so it opens as this row's secret only; nothing else here
-- is secret. (SQLite dialect; see ../postgres for the twin.)
CREATE TABLE secrets (
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    value_sealed  TEXT NOT NULL,
    description   TEXT,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);
