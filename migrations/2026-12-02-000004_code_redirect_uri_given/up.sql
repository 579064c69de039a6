-- Whether the authorization request named its redirect_uri: only then must the token request
-- repeat it (RFC 6749 §4.1.3). Codes issued before this migration all had one named.
ALTER TABLE auth_codes ADD COLUMN redirect_uri_given BOOLEAN NOT NULL DEFAULT TRUE;
