-- +goose Up
CREATE TABLE sessions (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    external_id text, -- NULL when absent; unique within the account otherwise
    title       text             NOT NULL,
    source      text             NOT NULL,
    model       text             NOT NULL,
    status      text             NOT NULL CHECK (status IN ('active', 'completed', 'failed')),
    started_at  timestamptz      NOT NULL,
    ended_at    timestamptz,
    tokens      bigint           NOT NULL,
    metadata    json             NOT NULL, -- json, not jsonb: returned byte for byte
    created_at  timestamptz      NOT NULL,
    updated_at  timestamptz      NOT NULL,
    CONSTRAINT sessions_external_id_key UNIQUE (account_id, external_id)
);

CREATE INDEX sessions_account_id ON sessions (account_id, id);

CREATE TABLE leads (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    account_id text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text             NOT NULL,
    email      text             NOT NULL,
    phone      text, -- E.164; NULL when absent; unique within the account otherwise
    company    text             NOT NULL,
    notes      text             NOT NULL,
    status     text             NOT NULL CHECK (status IN ('new', 'contacted', 'qualified', 'lost')),
    created_at timestamptz      NOT NULL,
    updated_at timestamptz      NOT NULL,
    CONSTRAINT leads_phone_key UNIQUE (account_id, phone)
);

CREATE INDEX leads_account_id ON leads (account_id, id);

-- +goose Down
DROP TABLE leads;
DROP TABLE sessions;
