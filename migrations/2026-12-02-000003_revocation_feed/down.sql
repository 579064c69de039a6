ALTER TABLE clients DROP COLUMN permissions;
DROP TABLE revocation_feed_head;
DROP INDEX revocation_feed_at;
DROP TABLE revocation_feed;
