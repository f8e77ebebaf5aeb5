-- Ingestion webhooks, their events (the mapping queue and the event log), request
-- identifiers for deduplication, and the mapper's per-webhook leases (PostgreSQL dialect; see
-- ../sqlite for the twin).

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    identifier     TEXT NOT NULL,
    webhook_key    TEXT NOT NULL UNIQUE,
    definition     TEXT NOT NULL,
    secret_sealed  TEXT,
    revision       BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     BIGINT NOT NULL,
    updated_by     TEXT NOT NULL,
    UNIQUE (org_id, identifier)
);

-- Every request a webhook received: PENDING until mapped, then its result; REJECTED ones
-- (bad signature) keep no request. `seq` is arrival order, which mapping follows per webhook.
CREATE TABLE webhook_events (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The inserting (or replaying) transaction: the mapper reads below the oldest running
    -- transaction, so an event committed late with a lower seq is never overtaken.
    tx            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL,
    webhook_id    TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    request_id    TEXT,
    request       TEXT,
    result        TEXT,
    received_at   BIGINT NOT NULL,
    processed_at  BIGINT
);
CREATE INDEX webhook_events_pending ON webhook_events (webhook_id, seq) WHERE status = 'PENDING';
CREATE INDEX webhook_events_by_webhook ON webhook_events (webhook_id, seq);
CREATE INDEX webhook_events_by_time ON webhook_events (received_at);

-- `requestIdentifierPath` values seen within the dedupe window.
CREATE TABLE webhook_request_ids (
    webhook_id  TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    request_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, request_id)
);
CREATE INDEX webhook_request_ids_by_expiry ON webhook_request_ids (expires_at);

-- Which node maps a webhook's events, until when (events of one webhook are mapped in order
-- by one node at a time; an expired lease is taken over).
CREATE TABLE webhook_mapper_leases (
    webhook_id  TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
