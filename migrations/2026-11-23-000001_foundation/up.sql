-- Portable across SQLite and PostgreSQL: ids are TEXT (UUID strings), times are BIGINT unix seconds.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    -- Bumped on password change / disable; sessions and families remember the version they started at.
    security_version BIGINT NOT NULL DEFAULT 1,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    -- Access tokens of this user issued before this time are revoked (published in the revocation feed).
    not_before       BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- SHA-256 (hex) of a 256-bit random secret; NULL for public clients.
    secret_hash   TEXT,
    is_public     BOOLEAN NOT NULL,
    -- Space-separated lists.
    redirect_uris TEXT NOT NULL,
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    audience      TEXT NOT NULL,
    first_party   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid                   TEXT PRIMARY KEY,
    algorithm             TEXT NOT NULL,
    -- base64url raw Ed25519 public key (the JWK "x").
    public_key            TEXT NOT NULL,
    -- base64url(nonce || AES-256-GCM(PKCS#8 document)), key derived from the key secret.
    private_key_encrypted TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    -- Published from created_at, signs from activates_at.
    activates_at          BIGINT NOT NULL,
    -- Set when a newer key takes over; published until every token it signed has expired.
    retired_at            BIGINT
);

CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    user_id    TEXT,
    client_id  TEXT,
    family_id  TEXT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL
);

CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
