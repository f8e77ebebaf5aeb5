-- Changes an outbox consumer could not handle deterministically (an unreadable row, a write
-- that fails the same way each time): parked with the reason, in the transaction that moves
-- the consumer's cursor past them, so the consumer goes on and the reason can be read through
-- the API. (SQLite dialect; see ../postgres.)
CREATE TABLE parked_changes (
    consumer    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    change_id   TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    parked_at   INTEGER NOT NULL,
    PRIMARY KEY (consumer, seq)
);
CREATE INDEX parked_changes_by_org ON parked_changes (org_id, parked_at);
