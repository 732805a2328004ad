-- +goose Up
CREATE TABLE sessions (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    external_id TEXT, -- NULL when absent; unique within the account otherwise
    title       TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('active', 'completed', 'failed')),
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    tokens      INTEGER NOT NULL,
    metadata    TEXT    NOT NULL CHECK (json_valid(metadata)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT sessions_external_id_key UNIQUE (account_id, external_id)
) STRICT;

CREATE INDEX sessions_account_id ON sessions (account_id, id);

CREATE TABLE leads (
    id         TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    phone      TEXT, -- E.164; NULL when absent; unique within the account otherwise
    company    TEXT    NOT NULL,
    notes      TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('new', 'contacted', 'qualified', 'lost')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT leads_phone_key UNIQUE (account_id, phone)
) STRICT;

CREATE INDEX leads_account_id ON leads (account_id, id);

-- +goose Down
DROP TABLE leads;
DROP TABLE sessions;
