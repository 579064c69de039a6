-- Browser sessions of the sign-in page. Only the SHA-256 of the cookie value is stored.
CREATE TABLE browser_sessions (
    id_hash          TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The user's security_version at sign-in; a password change or disable ends older sessions.
    security_version BIGINT NOT NULL,
    user_agent       TEXT,
    ip               TEXT,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);

CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);

-- Authorization codes (RFC 6749 §4.1.2): single use, short-lived, stored hashed.
CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    -- PKCE challenge as stored by the PKCE check (method and value), if one was sent.
    pkce_challenge TEXT,
    device_name    TEXT,
    -- The browser session that approved it (sign-out can end the families it started).
    session_hash   TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    -- The family the exchange started; revoked if the code is presented again.
    family_id      TEXT
);

CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);
CREATE INDEX auth_codes_session ON auth_codes (session_hash);

-- What a user allowed a client: the union of approved scopes.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
