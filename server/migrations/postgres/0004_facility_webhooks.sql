-- Facility webhooks: the sibling of user webhooks, owned the same way, receiving the shift
-- events of facilities their owner can access. One file for both backends (the SQLite
-- directory links to it as 0005): the dialects agree on all of it (SQLite reads BIGINT as an
-- integer). The fan-out is each backend's own: SQLite's triggers (sqlite/0006), PostgreSQL's
-- publish statement (store/postgres/delivery.rs).

-- 'user' | 'facility'. Every query is scoped to (owner, kind).
ALTER TABLE webhooks ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
-- Facility webhooks: JSON array of facility ids (as given, de-duplicated), or NULL: every
-- facility the owner can access, now and later. Always NULL for user webhooks.
ALTER TABLE webhooks ADD COLUMN facilities TEXT;

-- Listing and the per-kind limit are (owner, kind) lookups in creation order.
DROP INDEX webhooks_owner;
CREATE INDEX webhooks_owner_kind ON webhooks (client_id, user_id, kind, seq);
-- Fan-out looks webhooks up by their user (of any client) and kind.
CREATE INDEX webhooks_user_kind ON webhooks (user_id, kind);

-- The event's facility (its data.facilityId when that is a string), for the log and the
-- facility fan-out; and which webhooks it fanned out to ('user' | 'facility').
ALTER TABLE events ADD COLUMN facility_id TEXT;
ALTER TABLE events ADD COLUMN audience TEXT NOT NULL DEFAULT 'user';

-- Which facilities a user can access, in grant order. Purge leaves it alone.
CREATE TABLE user_facilities (
    user_id     TEXT   NOT NULL,
    facility_id TEXT   NOT NULL,
    position    BIGINT NOT NULL,              -- grant order within the user
    created_at  BIGINT NOT NULL,              -- unix milliseconds
    PRIMARY KEY (user_id, facility_id)
);
-- Facility fan-out starts from the event's facility.
CREATE INDEX user_facilities_facility ON user_facilities (facility_id, user_id);
