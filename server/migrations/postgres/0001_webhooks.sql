-- Registered user webhooks. A webhook belongs to the pair (client_id, user_id).
-- The same tables as migrations/sqlite, in PostgreSQL types.
CREATE TABLE webhooks (
    seq         BIGSERIAL PRIMARY KEY,        -- creation order, for listing
    id          TEXT      NOT NULL UNIQUE,
    client_id   TEXT      NOT NULL,
    user_id     TEXT      NOT NULL,
    url         TEXT      NOT NULL,
    events      TEXT      NOT NULL,           -- JSON array of event types, as given
    secrets     BYTEA     NOT NULL,           -- sealed JSON array (see crypto.rs)
    created_at  BIGINT    NOT NULL,           -- unix milliseconds
    updated_at  BIGINT    NOT NULL
);

CREATE INDEX webhooks_owner ON webhooks (client_id, user_id, seq);
