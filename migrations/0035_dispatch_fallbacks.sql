-- dispatch: the notification request behind each automatic SMS that could go by email if it fails
-- permanently (SMS→email fallback), kept until the fallback is sent or the SMS is long settled.
CREATE TABLE dispatch.fallbacks (
    message_id text PRIMARY KEY,
    account_id text NOT NULL,
    request    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dispatch_fallbacks_created ON dispatch.fallbacks (created_at);
