-- Webhook requests are stored compressed (`compressed.rs`): events stored from now on keep
-- their request in `request_compressed` and leave `request` empty; events stored before keep
-- their text in `request`, which readers still take (SQLite dialect; see ../postgres).
ALTER TABLE webhook_events ADD COLUMN request_compressed BLOB;
