-- The foundation: users and their credentials, settings, customers, LINE conversations,
-- every webhook event as received, messages, media and background jobs.
-- Times are unix milliseconds. Kept in step with ../postgres/0001_foundation.sql.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    login         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'agent')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    locale        TEXT    NOT NULL DEFAULT 'ja',
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    token_hash TEXT    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE counters (
    name       TEXT    PRIMARY KEY,
    value      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE customers (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    phone        TEXT    NOT NULL DEFAULT '',
    phone_digits TEXT    NOT NULL DEFAULT '',
    email        TEXT    NOT NULL DEFAULT '',
    notes        TEXT    NOT NULL DEFAULT '',
    tags         TEXT    NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- One conversation per LINE user (the desk answers 1:1 chats).
CREATE TABLE conversations (
    id              INTEGER PRIMARY KEY,
    line_user_id    TEXT    NOT NULL UNIQUE,
    display_name    TEXT,
    picture_url     TEXT,
    profile_state   TEXT    NOT NULL DEFAULT 'pending',
    blocked         INTEGER NOT NULL DEFAULT 0,
    status          TEXT    NOT NULL DEFAULT 'unread' CHECK (status IN ('unread', 'in_progress', 'done')),
    agent_id        INTEGER REFERENCES users(id),
    started_at      INTEGER,
    customer_id     INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    unread_count    INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX conversations_recent   ON conversations (last_message_at DESC, id DESC);
CREATE INDEX conversations_status   ON conversations (status, last_message_at DESC, id DESC);
CREATE INDEX conversations_agent    ON conversations (agent_id);
CREATE INDEX conversations_customer ON conversations (customer_id);

-- Every event exactly as LINE sent it: the dedupe key for redeliveries and the record of
-- event kinds the desk does not act on (nothing LINE sends is lost).
CREATE TABLE webhook_events (
    id               INTEGER PRIMARY KEY,
    webhook_event_id TEXT    UNIQUE,
    event_type       TEXT    NOT NULL,
    line_user_id     TEXT,
    timestamp        INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    raw              TEXT    NOT NULL
) STRICT;

-- Stored files. `data` is NULL when the bytes live on disk under the data dir.
-- `public` media (what agents send) is served without login at its unguessable key for LINE.
CREATE TABLE media (
    id           INTEGER PRIMARY KEY,
    key          TEXT    NOT NULL UNIQUE,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    public       INTEGER NOT NULL DEFAULT 0,
    data         BLOB,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    direction        TEXT    NOT NULL CHECK (direction IN ('in', 'out', 'system')),
    type             TEXT    NOT NULL,
    text             TEXT,
    payload          TEXT,
    line_message_id  TEXT    UNIQUE,
    media_id         INTEGER REFERENCES media(id),
    media_state      TEXT    NOT NULL DEFAULT 'none',
    agent_id         INTEGER REFERENCES users(id),
    delivery         TEXT    NOT NULL,
    reply_token      TEXT,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_conversation_time ON messages (conversation_id, created_at, id);

-- Background work that talks to LINE after the webhook answered: profiles and content.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    target_id   INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    last_error  TEXT,
    UNIQUE (kind, target_id)
) STRICT;
CREATE INDEX jobs_due ON jobs (next_at);
