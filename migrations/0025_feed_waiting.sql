-- What will go out later (reminders scheduled, requests held by quiet hours), as ingest last said;
-- due_at NULL: no longer waiting (kept a day, so an older statement arriving late changes nothing).
CREATE TABLE feed.waiting (
    account_id   text NOT NULL,
    key          text NOT NULL,
    message_type text NOT NULL,
    customer_id  text NOT NULL,
    job_id       text NOT NULL,
    due_at       timestamptz,
    reason       text NOT NULL,
    as_of        timestamptz NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX feed_waiting_due ON feed.waiting (account_id, due_at) WHERE due_at IS NOT NULL;
