-- The outbox is read in (writing transaction, seq) order, and a cursor is a place in that
-- order (see ../postgres, where transactions commit out of `seq` order). SQLite's single
-- writer commits changes in `seq` order, so a change's transaction part is always 0 here:
-- the order is `seq` order, the cursors moved before this migration keep their place, and
-- the primary key serves the reads. (SQLite dialect; see ../postgres for the twin.)
--
-- `tx_position` is the cursor's transaction part; `position` stays its `seq` part.
ALTER TABLE outbox_cursors ADD COLUMN tx_position INTEGER NOT NULL DEFAULT 0;
