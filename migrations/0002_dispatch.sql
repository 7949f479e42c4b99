-- dispatch: every outbound message it decided to send, keyed for idempotency, and the
-- addresses that must not receive automated messages.
CREATE SCHEMA dispatch;

CREATE TABLE dispatch.messages (
    message_id      text PRIMARY KEY,
    account_id      text NOT NULL,
    -- request id + channel: the same notification request never yields a second message.
    idempotency_key text NOT NULL UNIQUE,
    customer_id     text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('sms', 'email')),
    message_type    text NOT NULL,
    recipient       text NOT NULL,
    sender          text NOT NULL,
    subject         text NOT NULL DEFAULT '',
    body            text NOT NULL,
    html_body       text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dispatch_messages_account ON dispatch.messages (account_id, created_at);

CREATE TABLE dispatch.suppressions (
    account_id text NOT NULL,
    channel    text NOT NULL CHECK (channel IN ('sms', 'email')),
    address    text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, channel, address)
);

-- Events committed with the state above, published by the relay (guarantee 1).
CREATE TABLE dispatch.outbox (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
