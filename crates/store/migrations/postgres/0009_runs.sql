-- Runs of actions and automations (issue 24, reference §3.8), their logs, the queue of the
-- requests WEBHOOK runs send, and the timers automations wait on. (PostgreSQL dialect; see
-- ../sqlite for the twin.)

-- One row per run: the columns the run list filters on, and Port's run object (`document`).
CREATE TABLE runs (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    action           TEXT NOT NULL,
    blueprint        TEXT,
    entity           TEXT,
    status           TEXT NOT NULL,
    source           TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    impersonated_by  TEXT,
    external_run_id  TEXT,
    chain_depth      BIGINT NOT NULL,
    document         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX runs_by_org ON runs (org_id, seq);
CREATE INDEX runs_by_entity ON runs (org_id, entity, seq);
CREATE INDEX runs_by_action ON runs (org_id, action, seq);

CREATE TABLE run_logs (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    message     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX run_logs_by_run ON run_logs (run_id, seq);

-- The request a WEBHOOK run sends, rendered once and sealed under the master key (it may
-- hold secrets in clear), with its delivery state: `held` (its run waits for approval),
-- `pending` (due at `next_attempt_at`; a claim moves that to the end of its lease),
-- `succeeded`, `failed` or `dropped` (its run ended without it).
CREATE TABLE run_requests (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           TEXT NOT NULL UNIQUE REFERENCES runs (id) ON DELETE CASCADE,
    org_id           TEXT NOT NULL,
    request_sealed   TEXT NOT NULL,
    synchronized     BIGINT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_token      TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX run_requests_due ON run_requests (next_attempt_at) WHERE status = 'pending';

-- Every attempt of a run's request, secrets masked.
CREATE TABLE run_attempts (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT NOT NULL,
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempted_at   BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    status_code    BIGINT,
    response_body  TEXT,
    error          TEXT
);
CREATE INDEX run_attempts_by_run ON run_attempts (run_id, seq);

-- Timer properties automations wait on (TIMER_PROPERTY_EXPIRED): when each entity's timer
-- passes. A row is deleted in the transaction that fires it.
CREATE TABLE automation_timers (
    org_id     TEXT NOT NULL,
    blueprint  TEXT NOT NULL,
    entity     TEXT NOT NULL,
    property   TEXT NOT NULL,
    fires_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, blueprint, entity, property)
);
CREATE INDEX automation_timers_due ON automation_timers (fires_at);
