-- email_gateway: one row per message it was asked to send, claimed before the provider is called so a
-- message id reaches the provider at most once (guarantee 3).
CREATE SCHEMA email_gateway;

CREATE TABLE email_gateway.attempts (
    message_id     text PRIMARY KEY,
    account_id     text NOT NULL,
    -- claimed: a worker holds it (until lease_until) and may be calling the provider;
    -- unknown: the provider may or may not have it; sent / failed: settled.
    state          text NOT NULL CHECK (state IN ('claimed', 'sent', 'failed', 'unknown')),
    recipient      text NOT NULL,
    sender         text NOT NULL,
    body_digest    text NOT NULL,
    lease_until    timestamptz NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    provider_id    text,
    failure_reason text,
    error_code     text,
    error_text     text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX email_gateway_attempts_open ON email_gateway.attempts (state, lease_until) WHERE state IN ('claimed', 'unknown');

-- Events committed with the state above, published by the relay (guarantee 1).
CREATE TABLE email_gateway.outbox (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
