ALTER TABLE users DROP COLUMN email_verified;
ALTER TABLE users DROP COLUMN email;
ALTER TABLE users DROP COLUMN display_name;
