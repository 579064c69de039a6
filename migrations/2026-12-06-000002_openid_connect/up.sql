-- OpenID Connect (OIDC Core 1.0): the ID-token algorithm each client asked for (§2 / Dynamic
-- Client Registration §2, RS256 unless EdDSA was asked for), the `nonce` and sign-in time an
-- authorization code carries into the ID token (§3.1.2.1, §2 `auth_time`), the sign-in time of a
-- browser session (for `max_age`) and of a refresh family (kept across refreshes, §12.2).
-- Rows that exist already take their creation time: a session and a family start at a sign-in.
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE auth_codes ADD COLUMN nonce TEXT;
ALTER TABLE auth_codes ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
UPDATE auth_codes SET auth_time = created_at;
ALTER TABLE browser_sessions ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
UPDATE browser_sessions SET auth_time = created_at;
ALTER TABLE refresh_families ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
UPDATE refresh_families SET auth_time = created_at;
