-- DPoP (RFC 9449). A family started with a proof is bound to that key's thumbprint: every later
-- rotation needs a proof by the same key. An authorization request's `dpop_jkt` (§10) travels with
-- its code. A client can be required to present proofs (on by default for new public clients).
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
