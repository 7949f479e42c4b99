-- feed: the read model behind FeedService, one row per message with what the page shows.
CREATE SCHEMA feed;

CREATE TABLE feed.messages (
    message_id     text PRIMARY KEY,
    account_id     text NOT NULL,
    customer_id    text NOT NULL DEFAULT '',
    customer_name  text NOT NULL DEFAULT '',
    customer_phone text NOT NULL DEFAULT '',
    customer_email text NOT NULL DEFAULT '',
    -- NULL until the message's own event arrives (a status change can arrive first).
    direction      text,
    channel        text,
    message_type   text,
    status         text NOT NULL,
    status_rank    smallint NOT NULL,
    failure_reason text NOT NULL DEFAULT '',
    preview        text NOT NULL DEFAULT '',
    subject        text NOT NULL DEFAULT '',
    job_id         text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    sent_at        timestamptz,
    updated_at     timestamptz NOT NULL
);

CREATE INDEX feed_messages_page ON feed.messages (account_id, created_at DESC, message_id DESC);
CREATE INDEX feed_messages_thread ON feed.messages (account_id, customer_id, created_at DESC, message_id DESC);

CREATE TABLE feed.timeline (
    id          bigserial PRIMARY KEY,
    account_id  text NOT NULL,
    message_id  text NOT NULL,
    status      text NOT NULL,
    source      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    event_key   text NOT NULL UNIQUE
);

CREATE INDEX feed_timeline_message ON feed.timeline (message_id, occurred_at, id);
