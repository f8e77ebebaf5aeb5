-- Projects, their webhook subscriptions, the events published to them, and the durable
-- delivery queue with every attempt (PostgreSQL dialect; see ../sqlite for the twin).

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL,
    description   TEXT,
    status        TEXT NOT NULL,
    app_icon_url  TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (org_id, slug)
);

-- A project's webhook subscriptions. `keys_sealed` is the signing key ring, encrypted under
-- the master key; `failing_since` is the first failure since the last success.
CREATE TABLE subscriptions (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    project_id       TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    url              TEXT NOT NULL,
    headers          TEXT NOT NULL,
    active           BIGINT NOT NULL,
    events           TEXT NOT NULL,
    keys_sealed      TEXT NOT NULL,
    disabled_reason  TEXT,
    failing_since    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX subscriptions_by_project ON subscriptions (project_id);
CREATE INDEX subscriptions_by_org ON subscriptions (org_id);

-- Events published to a project; `payload` is the exact body its subscribers receive, and
-- `id` (unique per project) makes publishing idempotent.
CREATE TABLE project_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (project_id, id)
);

-- The durable queue: one row per (event, subscription) send. A pending delivery is due at
-- `next_attempt_at`; claiming it moves `next_attempt_at` to the end of the lease, so a
-- delivery whose worker died becomes due again by itself.
CREATE TABLE deliveries (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_seq        BIGINT NOT NULL REFERENCES project_events (seq) ON DELETE CASCADE,
    status           TEXT NOT NULL,
    retries          BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_token      TEXT,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, seq);

CREATE TABLE delivery_attempts (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                TEXT NOT NULL,
    delivery_seq      BIGINT NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    attempted_at      BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    url               TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    status_code       BIGINT,
    response_headers  TEXT,
    response_body     TEXT,
    error             TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_seq, seq);
