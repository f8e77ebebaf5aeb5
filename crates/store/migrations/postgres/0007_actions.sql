-- Actions and automations (issue 24, seeds 002 and 003): one resource, Port's document as
-- the user wrote it (validated, every template and jq condition compiled before it is
-- stored), one row per (organization, identifier).
CREATE TABLE actions (
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    identifier  TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);
