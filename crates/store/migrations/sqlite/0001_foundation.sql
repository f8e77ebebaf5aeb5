-- Tenancy, the catalog and the change outbox (SQLite dialect; see ../postgres for the twin).
-- Times are Unix milliseconds; JSON documents are TEXT so that key order is kept exactly.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_clients (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX api_clients_by_org ON api_clients (org_id);

CREATE TABLE blueprints (
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    identifier  TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

CREATE TABLE entities (
    org_id      TEXT NOT NULL,
    blueprint   TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    title       TEXT,
    icon        TEXT,
    team        TEXT NOT NULL,
    properties  TEXT NOT NULL,
    relations   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint, identifier),
    FOREIGN KEY (org_id, blueprint) REFERENCES blueprints (org_id, identifier)
);
CREATE INDEX entities_by_identifier ON entities (org_id, identifier);

-- One row per (entity, relation, target): relation look-ups in both directions are indexed.
CREATE TABLE entity_relations (
    org_id            TEXT NOT NULL,
    blueprint         TEXT NOT NULL,
    identifier        TEXT NOT NULL,
    relation          TEXT NOT NULL,
    target_blueprint  TEXT NOT NULL,
    target            TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint, identifier, relation, target)
);
CREATE INDEX entity_relations_by_target ON entity_relations (org_id, target_blueprint, target);

-- The outbox: every change, in commit order (one writer), read by consumers past a cursor.
CREATE TABLE changes (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    org_id            TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    action            TEXT NOT NULL,
    blueprint         TEXT NOT NULL,
    entity            TEXT,
    origin            TEXT NOT NULL,
    actor             TEXT NOT NULL,
    webhook_id        TEXT,
    webhook_event_id  TEXT,
    run_id            TEXT,
    diff_before       TEXT,
    diff_after        TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX changes_by_org_time ON changes (org_id, created_at);
CREATE INDEX changes_by_entity ON changes (org_id, blueprint, entity);
CREATE INDEX changes_by_webhook_event ON changes (org_id, webhook_event_id);

CREATE TABLE outbox_cursors (
    consumer    TEXT PRIMARY KEY,
    position    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
