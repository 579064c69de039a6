DROP INDEX sign_in_throttles_last_failure_at;
DROP TABLE sign_in_throttles;
