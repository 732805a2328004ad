-- Idempotency keys, scoped by account. A record is in flight (claimed by
-- the holder of token until lease_expires_at) or complete (the response is
-- stored for replay). Records are ignored from expires_at on and purged.

-- +goose Up
CREATE TABLE idempotency_keys (
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key              text COLLATE "C" NOT NULL,
    method           text             NOT NULL,
    path             text             NOT NULL,
    body_hash        bytea            NOT NULL CHECK (octet_length(body_hash) = 32),
    state            text             NOT NULL CHECK (state IN ('in_flight', 'complete')),
    token            text, -- the claim holder's; NULL once complete
    lease_expires_at timestamptz      NOT NULL,
    status           integer, -- the stored response; NULL while in flight
    header           text,    -- JSON object: canonical name → values
    body             bytea,
    created_at       timestamptz      NOT NULL,
    expires_at       timestamptz      NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
