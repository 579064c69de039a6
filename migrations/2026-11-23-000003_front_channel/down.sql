DROP TABLE consents;
DROP INDEX auth_codes_session;
DROP INDEX auth_codes_expires_at;
DROP TABLE auth_codes;
DROP INDEX browser_sessions_expires_at;
DROP INDEX browser_sessions_user;
DROP TABLE browser_sessions;
