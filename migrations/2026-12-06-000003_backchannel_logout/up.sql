-- OpenID Connect Back-Channel Logout 1.0: where a client wants to hear that a session ended.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- The outbox of logout tokens (Back-Channel Logout §2.5): one row per family that ended early
-- while its client had a logout URI, written in the transaction that revoked the family, so a
-- crash or restart loses none. A family ends once, so its id is the key. The row names its
-- client and user itself: housekeeping may delete the family long before delivery gives up.
CREATE TABLE logout_deliveries (
    family_id       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    given_up_at     BIGINT,
    -- The node sending it now, and until when: another node (several on one PostgreSQL) takes
    -- the row only after the lease ran out, so one row is never sent twice at once.
    lease_id        TEXT,
    leased_until    BIGINT
);

-- What the delivery task asks for: rows still to send, soonest first.
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX logout_deliveries_client ON logout_deliveries (client_id);
