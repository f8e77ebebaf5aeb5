-- The outbox is read in (writing transaction, seq) order, and a cursor is a place in that
-- order. Reading in `seq` order below the oldest running transaction skipped changes: a
-- transaction that took its id first can record a higher `seq` and commit first; a reader
-- whose horizon is the other (still running) transaction reads it and moves its cursor past
-- the lower `seq` the other then commits. Every transaction with an id below a snapshot's
-- xmin has ended and every running or later one has an id at or above it, so the changes
-- below xmin are final and (tx, seq) order past a cursor never skips one (see
-- Tx::changes_after). (PostgreSQL dialect; see ../sqlite for the twin.)
--
-- `tx_position` is the cursor's transaction part; `position` stays its `seq` part.
ALTER TABLE outbox_cursors ADD COLUMN tx_position BIGINT NOT NULL DEFAULT 0;
CREATE INDEX changes_by_tx ON changes (tx, seq);

-- Cursors moved before this migration are places in `seq` order: the changes up to
-- `position` were read (but for ones the old reading skipped, which cannot be told apart from
-- read ones and stay skipped), none past it. Every transaction below this migration's xmin
-- (X) has ended, and the old reading read a change only below its reader's xmin, never past
-- X: so every change read has a tx below X, the changes past `position` below X are all
-- there and final, and every other change not read (past `position`, or one of a
-- transaction still running now) has a tx at or above X. A cursor with no change past
-- `position` below X (a consumer that had caught up) becomes (X, 0): what it read is before
-- it, the rest after it. One with such changes (a consumer behind at the upgrade) keeps
-- `position` and gets tx_position -X: its backlog, the changes below X past `position`, is
-- read in `seq` order (gap-free: they are final), then it goes on at (X, 0). Neither reads a
-- change again nor skips one. (Taking the tx of the change at `position` would skip the
-- changes past it of older transactions; starting at the oldest unread change's tx would
-- read again the read changes of younger ones.)
UPDATE outbox_cursors AS c
SET tx_position = CASE WHEN EXISTS (SELECT 1 FROM changes WHERE seq > c.position AND tx < h.xmin)
                       THEN -(h.xmin::text::bigint) ELSE h.xmin::text::bigint END,
    position = CASE WHEN EXISTS (SELECT 1 FROM changes WHERE seq > c.position AND tx < h.xmin)
                    THEN c.position ELSE 0 END
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) AS h;
