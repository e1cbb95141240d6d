-- Event ids are unique per publisher (the client of the publishing token), not across all of
-- them: one publisher can neither collide with nor pre-empt another's ids. `id` stays the
-- internal key deliveries refer to (a fresh UUID from now on); `public_id` is the id the
-- publisher gave (or the generated one), the one receivers and the log see.
ALTER TABLE events ADD COLUMN publisher TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN public_id TEXT NOT NULL DEFAULT '';
UPDATE events SET public_id = id;
CREATE UNIQUE INDEX events_publisher_id ON events (publisher, public_id);
