-- Idempotency keys, scoped by account. A record is in flight (claimed by
-- the holder of token until lease_expires_at) or complete (the response is
-- stored for replay). Records are ignored from expires_at on and purged.

-- +goose Up
CREATE TABLE idempotency_keys (
    account_id       TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key              TEXT    NOT NULL,
    method           TEXT    NOT NULL,
    path             TEXT    NOT NULL,
    body_hash        BLOB    NOT NULL CHECK (length(body_hash) = 32),
    state            TEXT    NOT NULL CHECK (state IN ('in_flight', 'complete')),
    token            TEXT, -- the claim holder's; NULL once complete
    lease_expires_at INTEGER NOT NULL,
    status           INTEGER, -- the stored response; NULL while in flight
    header           TEXT,    -- JSON object: canonical name → values
    body             BLOB,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) STRICT;

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
