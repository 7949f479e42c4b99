-- ingest: snapshots of accounts, customers and jobs as the scheduling system describes them,
-- and the job events already processed (the unit of deduplication).
CREATE SCHEMA ingest;

CREATE TABLE ingest.processed_events (
    event_id     text PRIMARY KEY,
    account_id   text NOT NULL,
    event_type   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest.accounts (
    account_id    text PRIMARY KEY,
    name          text NOT NULL,
    timezone      text NOT NULL,
    sms_number    text NOT NULL,
    email_from    text NOT NULL,
    reminder_time time NOT NULL,
    quiet_start   time NOT NULL,
    quiet_end     time NOT NULL,
    -- occurred_at of the event this snapshot came from; older events never overwrite it.
    as_of         timestamptz NOT NULL
);

CREATE TABLE ingest.customers (
    account_id    text NOT NULL,
    customer_id   text NOT NULL,
    name          text NOT NULL,
    phone         text,
    email         text,
    sms_allowed   boolean NOT NULL,
    email_allowed boolean NOT NULL,
    as_of         timestamptz NOT NULL,
    PRIMARY KEY (account_id, customer_id)
);

CREATE TABLE ingest.jobs (
    account_id      text NOT NULL,
    job_id          text NOT NULL,
    customer_id     text NOT NULL,
    title           text NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    technician_name text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    state           text NOT NULL CHECK (state IN ('scheduled', 'en_route', 'completed', 'cancelled')),
    as_of           timestamptz NOT NULL,
    PRIMARY KEY (account_id, job_id)
);

-- Events committed with the state above, published by the relay (guarantee 1).
CREATE TABLE ingest.outbox (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
