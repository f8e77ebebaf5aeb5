-- Runs for an execution agent (issue 25, reference §5): an `agent: true` WEBHOOK run's request
-- is not sent by Wharf but waits, `status = 'agent'`, for an agent to claim it. A claim
-- records who claimed it and when, and moves `next_attempt_at` to the end of the visibility
-- timeout (the request is claimable again after it unless acknowledged); an acknowledgement
-- moves it to `acked`, never handed out again. (PostgreSQL dialect; see ../sqlite for the twin.)
ALTER TABLE run_requests ADD COLUMN installation_id TEXT;
ALTER TABLE run_requests ADD COLUMN claimed_at BIGINT;
ALTER TABLE run_requests ADD COLUMN acked_at BIGINT;
CREATE INDEX run_requests_for_agents ON run_requests (org_id, next_attempt_at) WHERE status = 'agent';
CREATE INDEX run_requests_acked ON run_requests (run_id) WHERE status = 'acked';

-- Organization settings Port's clients write (`PATCH /v1/organization`), as a JSON object.
ALTER TABLE organizations ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
