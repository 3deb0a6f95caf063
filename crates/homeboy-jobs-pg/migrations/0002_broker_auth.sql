-- homeboy job store, schema version 2: runner credentials and runner sessions, shared by every broker on
-- the database (a runner paired through one broker authenticates at any other).
--
-- A credential holds the SHA-256 digest of its token, never the token; a presented token is looked up by
-- its digest and then compared in constant time by the broker. `record` is the credential as JSON (the
-- shape of `broker_auth.json`'s entries); the other columns are derived from it for lookups.

CREATE TABLE homeboy_broker_credentials (
    id            text PRIMARY KEY,
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    runner_id     text NOT NULL,
    token_sha256  text NOT NULL,
    revoked       boolean NOT NULL DEFAULT false,
    record        json NOT NULL
);
CREATE INDEX homeboy_broker_credentials_digest ON homeboy_broker_credentials (token_sha256);

-- Runner sessions (informational: who registered, with which build); the newest few hundred are kept.
CREATE TABLE homeboy_runner_sessions (
    id             text PRIMARY KEY,
    runner_id      text NOT NULL,
    created_at_ms  bigint NOT NULL,
    record         json NOT NULL
);
CREATE INDEX homeboy_runner_sessions_created ON homeboy_runner_sessions (created_at_ms);
