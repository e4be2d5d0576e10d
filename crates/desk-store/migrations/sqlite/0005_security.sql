-- Security (issue 9): API tokens that expire and can be revoked, the login throttle kept in
-- the database (shared by every instance), LINE passcodes stored as a keyed hash (for
-- look-up) plus their encrypted value (for display), and the index the passcodes' global
-- guessing budget counts with. Times are unix milliseconds.
-- Kept in step with ../postgres/0005_security.sql.

-- API tokens: `expires_at` NULL never expires; `revoked_at` set ends the token (kept for
-- the list: who had which token until when).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Every login attempt the throttle let through, by login ID (trimmed, lower case) and
-- client address. A row is reserved as `pending` *before* the password is verified, so
-- concurrent tries count at once; it becomes `failed` or `ok` afterwards. Rows older than
-- the throttle's longest window are deleted, nothing younger.
CREATE TABLE login_attempts (
    id        INTEGER PRIMARY KEY,
    login_key TEXT    NOT NULL,
    client    TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    outcome   TEXT    NOT NULL CHECK (outcome IN ('pending', 'failed', 'ok'))
) STRICT;
CREATE INDEX login_attempts_login  ON login_attempts (login_key, at);
CREATE INDEX login_attempts_client ON login_attempts (client, at);
CREATE INDEX login_attempts_at     ON login_attempts (at);

-- Addresses a login ID signed in from: there the real user still gets in while the login
-- ID or the whole desk is throttled by attempts from elsewhere.
CREATE TABLE login_known_clients (
    login_key  TEXT    NOT NULL,
    client     TEXT    NOT NULL,
    last_ok_at INTEGER NOT NULL,
    PRIMARY KEY (login_key, client)
) STRICT;

-- Passcodes: `code_hash` (HMAC-SHA256 under the desk's secret key) finds a code a LINE user
-- sends; `code_enc` (encrypted under the same key) shows it to agents; `code` keeps only
-- the masked form. Rows of older databases are converted at the first start with a key
-- (desk-store `secrets.rs`), since SQL has no key.
ALTER TABLE customer_passcodes ADD COLUMN code_hash TEXT;
ALTER TABLE customer_passcodes ADD COLUMN code_enc TEXT;
DROP INDEX customer_passcodes_active_code;
CREATE UNIQUE INDEX customer_passcodes_active_hash
    ON customer_passcodes (code_hash) WHERE used_at IS NULL AND replaced_at IS NULL;
-- The history no longer records issued codes (a live code is a secret).
UPDATE customer_history SET old_value = NULL, new_value = NULL WHERE action = 'passcode_issued';

-- The desk-wide guessing budget counts the failed passcode attempts of the last hour.
CREATE INDEX passcode_attempts_failed_at ON passcode_attempts (at) WHERE outcome = 'failed';
