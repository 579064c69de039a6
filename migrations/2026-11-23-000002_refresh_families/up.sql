-- One family = one login of one user on one device for one client.
CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    scope               TEXT NOT NULL,
    device_name         TEXT,
    -- User agent and IP of the family's last use.
    user_agent          TEXT,
    ip                  TEXT,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    -- Extended by every rotation, never past absolute_expires_at.
    idle_expires_at     BIGINT NOT NULL,
    -- Fixed at login; rotation never extends it.
    absolute_expires_at BIGINT NOT NULL,
    rotation_count      BIGINT NOT NULL DEFAULT 0,
    revoked_at          BIGINT,
    revoked_reason      TEXT
);

CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_revoked_at ON refresh_families (revoked_at);
CREATE INDEX refresh_families_absolute_expires_at ON refresh_families (absolute_expires_at);

-- Every token a family has had. Only the SHA-256 of the token is stored.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    generation  BIGINT NOT NULL,
    parent_hash TEXT,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Access tokens revoked one by one (RFC 7009), kept until they expire anyway.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);
CREATE INDEX users_not_before ON users (not_before);
