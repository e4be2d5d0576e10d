-- Sending: every agent message is a `messages` row (direction 'out') plus an `outbox` row
-- written in the same transaction; the outbox worker delivers it by reply or push.
-- Kept in step with ../postgres/0002_outbox.sql.

-- Reply tokens arrive with customer messages and may be used once.
ALTER TABLE messages ADD COLUMN reply_token_used INTEGER NOT NULL DEFAULT 0;
-- LINE's answer when a delivery failed, shown to the agent.
ALTER TABLE messages ADD COLUMN delivery_error TEXT;
-- When the message went out, and how (reply | push).
ALTER TABLE messages ADD COLUMN sent_at INTEGER;
ALTER TABLE messages ADD COLUMN sent_via TEXT;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL UNIQUE REFERENCES messages(id),
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    -- queued: waiting to be sent | sending: a request may be under way (crash-safe marker)
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sending')),
    -- Push: one X-Line-Retry-Key per message, kept so a retry is never a second message.
    retry_key       TEXT    NOT NULL,
    -- How the request under way was made (reply | push): after a crash, a reply in flight
    -- is uncertain (no retry key), a push is simply retried with its key.
    attempt_via     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at);
CREATE INDEX outbox_conversation ON outbox (conversation_id, message_id);

-- One sender per conversation at a time, across instances: a lease on the chat.
ALTER TABLE conversations ADD COLUMN send_lease_until INTEGER;

-- What agents and admins did to a chat's status (an admin's release is recorded here).
CREATE TABLE conversation_log (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    actor_id        INTEGER REFERENCES users(id),
    action          TEXT    NOT NULL,
    from_status     TEXT,
    to_status       TEXT,
    at              INTEGER NOT NULL
) STRICT;
CREATE INDEX conversation_log_conversation ON conversation_log (conversation_id, at);

CREATE INDEX messages_reply_tokens ON messages (conversation_id, created_at) WHERE reply_token IS NOT NULL AND reply_token_used = 0;
