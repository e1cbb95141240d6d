-- Registered user webhooks. A webhook belongs to the pair (client_id, user_id).
CREATE TABLE webhooks (
    seq         INTEGER PRIMARY KEY,          -- creation order, for listing
    id          TEXT    NOT NULL UNIQUE,
    client_id   TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,             -- JSON array of event types, as given
    secrets     BLOB    NOT NULL,             -- sealed JSON array (see crypto.rs)
    created_at  INTEGER NOT NULL,             -- unix milliseconds
    updated_at  INTEGER NOT NULL
);

CREATE INDEX webhooks_owner ON webhooks (client_id, user_id, seq);
