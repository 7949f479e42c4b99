-- ingest: who works each job, as its latest event names them by id: the lead technician and the
-- helpers (each once, the lead not among them).
ALTER TABLE ingest.jobs
    ADD COLUMN technician_id text,
    ADD COLUMN helper_ids text[] NOT NULL DEFAULT '{}';
