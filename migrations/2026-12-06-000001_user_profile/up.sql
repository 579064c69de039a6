-- The user's profile, the source of the OpenID Connect standard claims (OIDC Core §5.1):
-- `name` (display_name), `email`, `email_verified`. NULL means "not set": the claim is left out.
ALTER TABLE users ADD COLUMN display_name TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
