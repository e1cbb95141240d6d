-- Facility webhooks (the tables: 0005, shared with PostgreSQL), their fan-out on SQLite.
--
-- Fan-out by audience. User events reach the user webhooks of the event's user (a facility
-- webhook subscribed to "all" must not match, as migration 0003's trigger would have it);
-- facility events reach the facility webhooks of every user who can access the event's
-- facility at publication, when the webhook follows all of its owner's facilities (NULL) or
-- names this one. A delivery carries the webhook owner's user, so the owner's log finds it.
DROP TRIGGER events_fan_out;

CREATE TRIGGER events_fan_out_user AFTER INSERT ON events WHEN NEW.audience = 'user'
BEGIN
    INSERT INTO deliveries (id, event_id, webhook_id, client_id, user_id, url, status, next_attempt_at, created_at)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
               || substr(lower(hex(randomblob(2))), 2) || '-'
               || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
               || lower(hex(randomblob(6))),
           NEW.id, w.id, w.client_id, w.user_id, w.url, 'pending', NEW.created_at, NEW.created_at
      FROM webhooks w
     WHERE w.user_id = NEW.user_id AND w.kind = 'user'
       AND (w.events LIKE '%"all"%' OR w.events LIKE '%"' || NEW.event_type || '"%')
     ORDER BY w.seq;
END;

CREATE TRIGGER events_fan_out_facility AFTER INSERT ON events
  WHEN NEW.audience = 'facility' AND NEW.facility_id IS NOT NULL
BEGIN
    INSERT INTO deliveries (id, event_id, webhook_id, client_id, user_id, url, status, next_attempt_at, created_at)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
               || substr(lower(hex(randomblob(2))), 2) || '-'
               || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
               || lower(hex(randomblob(6))),
           NEW.id, w.id, w.client_id, w.user_id, w.url, 'pending', NEW.created_at, NEW.created_at
      FROM user_facilities a
      JOIN webhooks w ON w.user_id = a.user_id AND w.kind = 'facility'
     WHERE a.facility_id = NEW.facility_id
       AND (w.events LIKE '%"all"%' OR w.events LIKE '%"' || NEW.event_type || '"%')
       AND (w.facilities IS NULL
            OR EXISTS (SELECT 1 FROM json_each(w.facilities) f WHERE f.value = NEW.facility_id))
     ORDER BY w.seq;
END;
