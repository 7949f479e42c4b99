-- delivery_status: the authoritative status of every message, the provider-id mapping and
-- every raw report in each message's timeline.
CREATE SCHEMA delivery_status;

CREATE TABLE delivery_status.messages (
    message_id     text PRIMARY KEY,
    account_id     text NOT NULL,
    channel        text,
    provider_id    text,
    status         text NOT NULL,
    status_rank    smallint NOT NULL,
    failure_reason text,
    error_code     text,
    error_text     text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX delivery_status_provider_id ON delivery_status.messages (provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE delivery_status.timeline (
    id          bigserial PRIMARY KEY,
    message_id  text NOT NULL,
    account_id  text NOT NULL,
    source      text NOT NULL,
    status      text NOT NULL,
    -- a report seen twice (a replayed webhook, a redelivered event) is stored once.
    dedupe_key  text NOT NULL UNIQUE,
    detail      jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivery_status_timeline_message ON delivery_status.timeline (message_id, id);

-- Events committed with the state above, published by the relay (guarantee 1).
CREATE TABLE delivery_status.outbox (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
