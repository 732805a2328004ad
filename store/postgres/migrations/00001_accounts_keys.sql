-- IDs sort byte-wise (COLLATE "C") so that ORDER BY id is ULID (creation) order.

-- +goose Up
CREATE TABLE accounts (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    name       text             NOT NULL,
    created_at timestamptz      NOT NULL,
    CONSTRAINT accounts_name_key UNIQUE (name)
);

CREATE TABLE api_keys (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    account_id   text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text             NOT NULL,
    start        text             NOT NULL,
    hash         bytea            NOT NULL CHECK (octet_length(hash) = 32),
    scopes       text[]           NOT NULL,
    rate_plan    text             NOT NULL,
    created_at   timestamptz      NOT NULL,
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_hash_key UNIQUE (hash)
);

CREATE INDEX api_keys_account_id ON api_keys (account_id, id);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE accounts;
