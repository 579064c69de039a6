-- Failed sign-ins per username, for the back-off every node sees. One row per username that failed
-- recently, known or not; the username itself is not stored (people type passwords into the
-- username field), only an HMAC of it under the server's key secret.
CREATE TABLE sign_in_throttles (
    username_key     TEXT PRIMARY KEY,
    -- Failures since the last successful sign-in (forgotten a day after the last one).
    failures         BIGINT NOT NULL,
    last_failure_at  BIGINT NOT NULL,
    -- Attempts before this time are refused without checking the password.
    blocked_until    BIGINT NOT NULL,
    -- The one `sign_in_failed` audit event of the current run of failures (known users only),
    -- updated in place with the count instead of one event per failure.
    event_id         TEXT,
    event_started_at BIGINT NOT NULL DEFAULT 0,
    event_failures   BIGINT NOT NULL DEFAULT 0,
    event_ip         TEXT,
    event_ips_vary   BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX sign_in_throttles_last_failure_at ON sign_in_throttles (last_failure_at);
