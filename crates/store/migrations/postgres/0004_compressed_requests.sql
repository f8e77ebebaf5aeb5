-- Webhook requests are stored compressed (`compressed.rs`): events stored from now on keep
-- their request in `request_compressed` and leave `request` empty; events stored before keep
-- their text in `request`, which readers still take (PostgreSQL dialect; see ../sqlite).
ALTER TABLE webhook_events ADD COLUMN request_compressed BYTEA;
