-- feed: the templates each account words for its automatic messages, one immutable row per
-- version of a (type, channel); the newest is current. A reset is a version marked built_in.
CREATE TABLE feed.templates (
    account_id   text NOT NULL,
    message_type text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('sms', 'email')),
    version      integer NOT NULL CHECK (version > 0),
    built_in     boolean NOT NULL,
    sms_body     text NOT NULL DEFAULT '',
    subject      text NOT NULL DEFAULT '',
    text_body    text NOT NULL DEFAULT '',
    html_body    text NOT NULL DEFAULT '',
    -- The publish request that made it: a retry answers this version.
    request_id   text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, message_type, channel, version),
    UNIQUE (account_id, request_id)
);
