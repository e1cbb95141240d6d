-- Published events: the exact bytes every delivery sends, stored once.
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT      NOT NULL UNIQUE,    -- idempotency key (given or generated), across replicas
    event_type  TEXT      NOT NULL,
    user_id     TEXT      NOT NULL,
    body        BYTEA     NOT NULL,           -- {"data":…,"eventType":…}
    created_at  BIGINT    NOT NULL            -- unix milliseconds
);

-- One delivery per event and matching webhook. The owner is copied so the log outlives
-- the webhook (kept 14 days).
CREATE TABLE deliveries (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT      NOT NULL UNIQUE,
    event_id        TEXT      NOT NULL REFERENCES events (id),
    webhook_id      TEXT      NOT NULL,
    client_id       TEXT      NOT NULL,
    user_id         TEXT      NOT NULL,
    url             TEXT      NOT NULL,       -- the webhook's URL when the event was published
    status          TEXT      NOT NULL,       -- pending | success | failure
    attempts        BIGINT    NOT NULL DEFAULT 0,
    next_attempt_at BIGINT    NOT NULL,
    lease_until     BIGINT,                   -- claimed by a worker until then
    lease_token     TEXT,
    created_at      BIGINT    NOT NULL
);

CREATE INDEX deliveries_due   ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_owner ON deliveries (client_id, user_id, created_at);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_lease ON deliveries (lease_token);

-- Every attempt, for the log.
CREATE TABLE attempts (
    delivery_id   TEXT    NOT NULL REFERENCES deliveries (id),
    attempt       BIGINT  NOT NULL,           -- 0 = first try, 1 = first retry, …
    url           TEXT    NOT NULL,
    status_code   BIGINT,                     -- NULL when there was no answer
    response_body TEXT    NOT NULL,           -- at most 20 kB, or why there was no answer
    duration_ms   BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
