-- A subscription's deliveries of one event (`GET …/deliveries?eventId=`: the first delivery and
-- its resends), found from the event rather than by walking the subscription's whole log; also
-- what deleting an event (pruning) needs to find the deliveries it cascades to.
CREATE INDEX deliveries_by_event ON deliveries (event_seq);
