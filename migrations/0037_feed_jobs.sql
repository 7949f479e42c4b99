-- feed: who works each job (lead and helpers, by technician id), for which customer, and where it
-- stands, from ingest's job listings: what scopes a technician's view of the Messages page.
CREATE TABLE feed.jobs (
    account_id     text NOT NULL,
    job_id         text NOT NULL,
    customer_id    text NOT NULL,
    -- scheduled, en_route, completed or cancelled.
    state          text NOT NULL,
    technician_ids text[] NOT NULL,
    -- When the listing was true (its job event's time): an older one never overwrites a newer one.
    as_of          timestamptz NOT NULL,
    PRIMARY KEY (account_id, job_id)
);

CREATE INDEX feed_jobs_technicians ON feed.jobs USING gin (technician_ids);
