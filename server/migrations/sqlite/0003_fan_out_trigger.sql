-- Publication fans out inside the event's own insert: on the single writer, one statement per
-- publish instead of five (savepoint, event, webhook lookup, a delivery each, release). SQLite
-- has no data-modifying CTEs; PostgreSQL does the same in one statement (store/postgres).
-- A repeated event id inserts nothing (ON CONFLICT DO NOTHING), so the trigger does not fire.
-- Delivery ids are version-4 UUIDs made from SQLite's randomness, like the ones Rust made before.
CREATE TRIGGER events_fan_out AFTER INSERT ON events
BEGIN
    INSERT INTO deliveries (id, event_id, webhook_id, client_id, user_id, url, status, next_attempt_at, created_at)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
               || substr(lower(hex(randomblob(2))), 2) || '-'
               || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
               || lower(hex(randomblob(6))),
           NEW.id, w.id, w.client_id, NEW.user_id, w.url, 'pending', NEW.created_at, NEW.created_at
      FROM webhooks w
     WHERE w.user_id = NEW.user_id
       AND (w.events LIKE '%"all"%' OR w.events LIKE '%"' || NEW.event_type || '"%')
     ORDER BY w.seq;
END;
