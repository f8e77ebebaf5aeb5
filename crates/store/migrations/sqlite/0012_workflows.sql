-- Workflows (issue 26, reference §4): a graph of trigger, WEBHOOK, UPSERT_ENTITY and CONDITION
-- nodes. Each save is a version (`workflow_versions`, never changed); a run keeps the version it
-- started with. (SQLite dialect; see ../postgres for the twin.)
CREATE TABLE workflows (
    org_id      TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    version_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

CREATE TABLE workflow_versions (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A workflow run (`wfr_…`): its document holds status, result, the outputs so far and the
-- trigger that fired.
CREATE TABLE workflow_runs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    org_id      TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    version_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX workflow_runs_by_org ON workflow_runs (org_id, seq);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (org_id, workflow, seq);

-- A node run (`wfnr_…`) and where it stands in the stepper's queue: `ready` (the stepper runs
-- it; claimable once `next_at` passed, a claim moving `next_at` to its lease's end), `waiting`
-- (an asynchronous webhook sent, waiting for its PATCH), `agent` (waiting for an execution
-- agent's claim, claimable from `next_at`), `acked` (taken by an agent), NULL (ended).
-- `claims` counts the stepper's claims (a hand-over counts as one): a node run claimed again
-- was left by a node that stopped mid-step.
CREATE TABLE workflow_node_runs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    org_id           TEXT NOT NULL,
    run_id           TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    document         TEXT NOT NULL,
    queue            TEXT,
    next_at          INTEGER NOT NULL,
    lease_token      TEXT,
    claims           INTEGER NOT NULL DEFAULT 0,
    request_sealed   TEXT,
    installation_id  TEXT,
    claimed_at       INTEGER,
    acked_at         INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX workflow_node_runs_by_run ON workflow_node_runs (run_id, seq);
CREATE INDEX workflow_node_runs_ready ON workflow_node_runs (next_at) WHERE queue = 'ready';
CREATE INDEX workflow_node_runs_for_agents ON workflow_node_runs (org_id, next_at) WHERE queue = 'agent';

CREATE TABLE workflow_node_run_logs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_run_id  TEXT NOT NULL REFERENCES workflow_node_runs (id) ON DELETE CASCADE,
    level        TEXT NOT NULL,
    message      TEXT NOT NULL,
    tags         TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX workflow_node_run_logs_by_node_run ON workflow_node_run_logs (node_run_id, seq);

-- The next tick of each SCHEDULE_TRIGGER node of each workflow's current version. Firing a
-- tick moves `next_at` past the time it fired at, in the transaction that starts the run, and
-- only if `next_at` is still what the firer read: each tick fires once across nodes, and
-- ticks missed while no node ran fire once.
CREATE TABLE workflow_schedules (
    org_id      TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    node        TEXT NOT NULL,
    next_at     INTEGER NOT NULL,
    PRIMARY KEY (org_id, workflow, node)
);
CREATE INDEX workflow_schedules_due ON workflow_schedules (next_at);
