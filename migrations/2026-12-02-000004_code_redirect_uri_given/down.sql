ALTER TABLE auth_codes DROP COLUMN redirect_uri_given;
