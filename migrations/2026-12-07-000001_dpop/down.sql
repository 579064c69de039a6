ALTER TABLE clients DROP COLUMN require_dpop;
ALTER TABLE auth_codes DROP COLUMN dpop_jkt;
ALTER TABLE refresh_families DROP COLUMN dpop_jkt;
