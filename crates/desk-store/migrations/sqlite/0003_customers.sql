-- Customers (顧客管理, spec L1–L4): the search key of names, the change history (変更履歴),
-- LINE passcodes and the LINE users' passcode attempts (for the guessing throttle).
-- Times are unix milliseconds. Kept in step with ../postgres/0003_customers.sql.

-- The name as searched: full-width ASCII folded, lower case, without spaces, so that
-- "山田花子" finds "山田 花子" (src/customers.rs `name_key`; kept in step by the store).
ALTER TABLE customers ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE customers SET name_key = lower(replace(replace(name, ' ', ''), '　', ''));
CREATE INDEX customers_phone_digits ON customers (phone_digits);

-- 変更履歴: every change to a customer, and every link and unlink of a LINE user.
-- No foreign key to customers: the history outlives a deleted customer (its last row says
-- who deleted it and which LINE users became 未登録).
CREATE TABLE customer_history (
    id              INTEGER PRIMARY KEY,
    customer_id     INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    -- The agent; NULL when the LINE user did it (passcode).
    actor_id        INTEGER REFERENCES users(id),
    -- created | updated | deleted | linked | unlinked | passcode_issued
    action          TEXT    NOT NULL,
    -- updated: name | phone | email | notes | tags
    field           TEXT,
    old_value       TEXT,
    new_value       TEXT,
    -- linked / unlinked: which LINE user (and their chat)
    line_user_id    TEXT,
    conversation_id INTEGER,
    -- linked / unlinked: agent | passcode | deleted
    via             TEXT,
    -- passcode_issued: the expiry
    valid_until     INTEGER
) STRICT;
CREATE INDEX customer_history_customer ON customer_history (customer_id, at, id);

-- LINE passcodes (@105-908). One active (neither used nor replaced) per customer, and an
-- active code is unique, so a message names at most one customer.
CREATE TABLE customer_passcodes (
    id                      INTEGER PRIMARY KEY,
    customer_id             INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    code                    TEXT    NOT NULL,
    issued_at               INTEGER NOT NULL,
    valid_until             INTEGER NOT NULL,
    issued_by               INTEGER REFERENCES users(id),
    used_at                 INTEGER,
    used_by_conversation_id INTEGER,
    replaced_at             INTEGER
) STRICT;
CREATE UNIQUE INDEX customer_passcodes_active_code
    ON customer_passcodes (code) WHERE used_at IS NULL AND replaced_at IS NULL;
CREATE UNIQUE INDEX customer_passcodes_active_customer
    ON customer_passcodes (customer_id) WHERE used_at IS NULL AND replaced_at IS NULL;

-- Every passcode-shaped message a LINE user sent, once checked: what came of it. The
-- failures within the last hour throttle the user (desk_core::passcode::attempt_allowed).
CREATE TABLE passcode_attempts (
    message_id      INTEGER PRIMARY KEY REFERENCES messages(id),
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    code            TEXT    NOT NULL,
    -- linked | failed (unknown, expired, used or replaced) | throttled (not checked)
    outcome         TEXT    NOT NULL CHECK (outcome IN ('linked', 'failed', 'throttled')),
    customer_id     INTEGER,
    -- When the LINE user sent it (the message's time).
    at              INTEGER NOT NULL,
    checked_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX passcode_attempts_failures ON passcode_attempts (conversation_id, at)
    WHERE outcome = 'failed';
