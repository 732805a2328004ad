-- Times are INTEGER microseconds since the Unix epoch, UTC.

-- +goose Up
CREATE TABLE accounts (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT accounts_name_key UNIQUE (name)
) STRICT;

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    start        TEXT    NOT NULL,
    hash         BLOB    NOT NULL CHECK (length(hash) = 32),
    scopes       TEXT    NOT NULL, -- space-separated
    rate_plan    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    CONSTRAINT api_keys_hash_key UNIQUE (hash)
) STRICT;

CREATE INDEX api_keys_account_id ON api_keys (account_id, id);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE accounts;
