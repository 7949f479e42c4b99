-- feed: each job's customer and where it stands, and who works it (lead and helpers, by technician
-- id), from ingest's job listings: what scopes a technician's view of the Messages page.
CREATE TABLE feed.jobs (
    account_id  text NOT NULL,
    job_id      text NOT NULL,
    customer_id text NOT NULL,
    -- scheduled, en_route, completed or cancelled.
    state       text NOT NULL,
    -- When the listing was true (its job event's time): an older one never overwrites a newer one.
    as_of       timestamptz NOT NULL,
    PRIMARY KEY (account_id, job_id)
);

-- One row per technician on a job, replaced with the job's listing: a technician's jobs are one
-- index range.
CREATE TABLE feed.job_technicians (
    account_id    text NOT NULL,
    technician_id text NOT NULL,
    job_id        text NOT NULL,
    PRIMARY KEY (account_id, technician_id, job_id)
);

CREATE INDEX feed_job_technicians_job ON feed.job_technicians (account_id, job_id);
