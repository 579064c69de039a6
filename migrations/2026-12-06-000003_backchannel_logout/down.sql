DROP INDEX logout_deliveries_client;
DROP INDEX logout_deliveries_due;
DROP TABLE logout_deliveries;
ALTER TABLE clients DROP COLUMN backchannel_logout_uri;
