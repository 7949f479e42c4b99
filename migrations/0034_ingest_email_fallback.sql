-- ingest: whether the account lets an automatic SMS that fails permanently go by email instead, as
-- its account.updated events last said (on unless turned off).
ALTER TABLE ingest.accounts
    ADD COLUMN email_fallback boolean NOT NULL DEFAULT true;
