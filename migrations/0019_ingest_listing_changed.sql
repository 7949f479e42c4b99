-- ingest: whether the last event applied to a customer changed what the directory lists for them
-- (name, phone, email, consent), so an event repeating the same details publishes no listing.
ALTER TABLE ingest.customers ADD COLUMN listing_changed boolean NOT NULL DEFAULT true;
