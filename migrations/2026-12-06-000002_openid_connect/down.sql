ALTER TABLE refresh_families DROP COLUMN auth_time;
ALTER TABLE browser_sessions DROP COLUMN auth_time;
ALTER TABLE auth_codes DROP COLUMN auth_time;
ALTER TABLE auth_codes DROP COLUMN nonce;
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
