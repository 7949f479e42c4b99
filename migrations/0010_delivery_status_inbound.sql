-- delivery-status: the directory it routes replies with (from ingest's DIRECTORY listings, newest
-- wins) and every inbound message it accepted, once per provider id.
CREATE TABLE delivery_status.accounts (
    account_id text PRIMARY KEY,
    name       text NOT NULL,
    sms_number text NOT NULL,
    email_from text NOT NULL,
    as_of      timestamptz NOT NULL
);
CREATE INDEX delivery_status_accounts_number ON delivery_status.accounts (sms_number, as_of DESC);

CREATE TABLE delivery_status.contacts (
    account_id  text NOT NULL,
    customer_id text NOT NULL,
    name        text NOT NULL,
    phone       text NOT NULL DEFAULT '',
    email       text NOT NULL DEFAULT '',
    as_of       timestamptz NOT NULL,
    PRIMARY KEY (account_id, customer_id)
);
CREATE INDEX delivery_status_contacts_phone ON delivery_status.contacts (account_id, phone, as_of DESC);
CREATE INDEX delivery_status_contacts_email ON delivery_status.contacts (account_id, lower(email), as_of DESC);

CREATE TABLE delivery_status.inbound (
    provider_id text PRIMARY KEY,
    message_id  text NOT NULL UNIQUE,
    account_id  text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('sms', 'email')),
    sender      text NOT NULL,
    customer_id text NOT NULL DEFAULT '',
    body        text NOT NULL,
    -- stop / start / help when the message was a carrier keyword.
    keyword     text,
    received_at timestamptz NOT NULL DEFAULT now()
);
