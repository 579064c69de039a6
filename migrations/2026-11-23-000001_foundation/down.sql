DROP INDEX audit_events_user_at;
DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE clients;
DROP TABLE users;
