-- Issue 10 (the chat screen): message groups, 取消, and the desk's own answers.
-- Kept in step with ../sqlite/0006_message_groups.sql.

-- One press of 送信 (a text and its images) is one group: the id of its first message;
-- NULL for that first message and for a message sent alone (its group is its own id).
ALTER TABLE messages ADD COLUMN send_group BIGINT;
-- 取消: a waiting message taken back (delivery 'cancelled'), when and by whom.
ALTER TABLE messages ADD COLUMN cancelled_at BIGINT;
ALTER TABLE messages ADD COLUMN cancelled_by BIGINT REFERENCES users(id);
-- The desk's answer to a customer message (the passcode confirmation) rides that message's
-- reply token: its id.
ALTER TABLE outbox ADD COLUMN reply_to BIGINT;
