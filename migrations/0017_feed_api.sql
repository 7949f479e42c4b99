-- feed: what the whole FeedService needs beside the rows themselves: customers to search and send
-- to, their opt-outs and unreachable numbers, manual sends by request id, unread replies, a change
-- log for WatchFeed, and one index per way the page narrows the feed.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The account as the directory lists it: where manual messages go out from.
CREATE TABLE feed.accounts (
    account_id text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    sms_number text NOT NULL DEFAULT '',
    email_from text NOT NULL DEFAULT '',
    as_of      timestamptz NOT NULL
);

-- Customers as the directory lists them. search_name is the name lower-cased with accents
-- removed; phone_digits the E.164 number's digits. Both carry trigram indexes for partial search.
CREATE TABLE feed.customers (
    account_id    text NOT NULL,
    customer_id   text NOT NULL,
    name          text NOT NULL DEFAULT '',
    phone         text NOT NULL DEFAULT '',
    email         text NOT NULL DEFAULT '',
    sms_allowed   boolean NOT NULL DEFAULT true,
    email_allowed boolean NOT NULL DEFAULT true,
    search_name   text NOT NULL DEFAULT '',
    phone_digits  text NOT NULL DEFAULT '',
    as_of         timestamptz NOT NULL,
    PRIMARY KEY (account_id, customer_id)
);
CREATE INDEX feed_customers_name ON feed.customers USING gin (search_name gin_trgm_ops);
CREATE INDEX feed_customers_phone ON feed.customers USING gin (phone_digits gin_trgm_ops);

-- Opt-outs as delivery-status reports them, latest event time wins.
CREATE TABLE feed.opt_outs (
    account_id  text NOT NULL,
    channel     text NOT NULL,
    address     text NOT NULL,
    opted_out   boolean NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, channel, address)
);

-- Numbers the provider said cannot take SMS (a landline): manual SMS to them is refused.
CREATE TABLE feed.landlines (
    account_id  text NOT NULL,
    phone       text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, phone)
);

-- Manual sends by the client's request id: the same request returns the same message.
CREATE TABLE feed.sends (
    account_id  text NOT NULL,
    request_id  text NOT NULL,
    message_id  text NOT NULL,
    fingerprint text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, request_id)
);

-- Notification requests for dispatch, committed with the send (guarantee 1).
CREATE TABLE feed.outbox (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every change to a feed row, in commit order for WatchFeed: rows are read in (xid, seq) order
-- and only from transactions older than every one still running, so a cursor never skips a row
-- that commits late.
CREATE TABLE feed.changes (
    seq        bigserial,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    account_id text NOT NULL,
    message_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feed_changes_watch ON feed.changes (account_id, xid, seq);
CREATE INDEX feed_changes_age ON feed.changes (changed_at);

ALTER TABLE feed.messages
    ADD COLUMN provider_error_code text NOT NULL DEFAULT '',
    ADD COLUMN provider_error_text text NOT NULL DEFAULT '',
    ADD COLUMN unread boolean NOT NULL DEFAULT false;
UPDATE feed.messages SET unread = true WHERE direction = 'inbound';

CREATE INDEX feed_messages_status ON feed.messages (account_id, status, created_at DESC, message_id DESC);
CREATE INDEX feed_messages_type ON feed.messages (account_id, message_type, created_at DESC, message_id DESC);
CREATE INDEX feed_messages_unread ON feed.messages (account_id, customer_id) WHERE unread;
-- Messages from senders no customer owns, searched by number or address.
CREATE INDEX feed_messages_strangers ON feed.messages (account_id, created_at DESC, message_id DESC)
    WHERE customer_id = '';

INSERT INTO feed.customers (account_id, customer_id, name, phone, email, search_name, phone_digits, as_of)
SELECT DISTINCT ON (account_id, customer_id) account_id, customer_id, customer_name, customer_phone, customer_email,
       lower(customer_name), regexp_replace(customer_phone, '[^0-9]', '', 'g'), updated_at
FROM feed.messages WHERE customer_id <> '' ORDER BY account_id, customer_id, updated_at DESC;
