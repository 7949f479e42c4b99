-- ingest: the durable schedule (day-before reminders, notifications waiting out quiet hours)
-- and the on-my-way throttle. Several ingest replicas share it with FOR UPDATE SKIP LOCKED.

-- At most one pending reminder per job; a reschedule moves it, a cancel deletes it.
CREATE TABLE ingest.reminders (
    account_id text NOT NULL,
    job_id     text NOT NULL,
    -- The appointment this reminder is for: a job that has moved since makes it stale.
    starts_at  timestamptz NOT NULL,
    due_at     timestamptz NOT NULL,
    PRIMARY KEY (account_id, job_id)
);
CREATE INDEX ingest_reminders_due ON ingest.reminders (due_at);

-- Notification requests held until the account's quiet hours end; moved to the outbox then.
CREATE TABLE ingest.deferred (
    outbox_id  text PRIMARY KEY,
    account_id text NOT NULL,
    due_at     timestamptz NOT NULL,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_deferred_due ON ingest.deferred (due_at);

-- The event time of the last on-my-way that went out per job (at most one per 5 minutes).
CREATE TABLE ingest.on_my_way (
    account_id   text NOT NULL,
    job_id       text NOT NULL,
    last_sent_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, job_id)
);
