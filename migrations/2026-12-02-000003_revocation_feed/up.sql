-- The revocation feed resource servers poll (GET /revocations): one append-only row per
-- revocation, numbered in commit order. `seq` is the paging cursor.
CREATE TABLE revocation_feed (
    seq        BIGINT PRIMARY KEY,
    -- family (subject = sid), user (subject = user id, `at` = its not-before),
    -- access_token (subject = jti), client (subject = client id, `at` = its deletion).
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    -- When the revocation happened; the entry is kept for the access-token lifetime plus skew.
    at         BIGINT NOT NULL,
    -- access_token only: when the token expires anyway.
    expires_at BIGINT
);

CREATE INDEX revocation_feed_at ON revocation_feed (at);

-- The last sequence number handed out, in its one row. Appending updates this row first, and the
-- row lock it takes lasts until commit: the next append waits, so numbers follow commit order
-- (see src/db/models/revocation_feed.rs). A sequence would hand numbers out before commit.
-- `epoch` changes at every server start (see `revocation_feed::new_epoch`) and is part of every
-- cursor: after a restore from a backup the numbers start over below cursors handed out before,
-- and a cursor of another epoch makes its poller start again from the oldest entry kept.
CREATE TABLE revocation_feed_head (
    id       BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    epoch    TEXT NOT NULL DEFAULT ''
);

-- Revocations made before this migration keep reaching resource servers: every one still on
-- record, numbered in time order. Entries older than the retention are skipped when served and
-- deleted by the next housekeeping pass.
INSERT INTO revocation_feed (seq, kind, subject, at, expires_at)
SELECT ROW_NUMBER() OVER (ORDER BY at, kind, subject), kind, subject, at, expires_at
FROM (
    SELECT 'family' AS kind, id AS subject, revoked_at AS at, CAST(NULL AS BIGINT) AS expires_at
    FROM refresh_families WHERE revoked_at IS NOT NULL
    UNION ALL
    SELECT 'user', id, not_before, CAST(NULL AS BIGINT) FROM users WHERE not_before IS NOT NULL
    UNION ALL
    SELECT 'access_token', jti, revoked_at, expires_at FROM revoked_access_tokens
) AS on_record;

INSERT INTO revocation_feed_head (id, last_seq) SELECT 1, COUNT(*) FROM revocation_feed;

-- What a client may do beyond its grants, space-separated: `revocations` = read the feed.
ALTER TABLE clients ADD COLUMN permissions TEXT NOT NULL DEFAULT '';
