-- An inbound email whose From address failed SPF and DKIM is kept but attributed to no customer;
-- why it failed is recorded with it, and the feed marks it.
ALTER TABLE delivery_status.inbound ADD COLUMN sender_unverified text;
ALTER TABLE feed.messages ADD COLUMN sender_unverified boolean NOT NULL DEFAULT false;

-- An account.updated is checked against the other accounts' business numbers and send addresses.
CREATE INDEX accounts_sms_number ON ingest.accounts (sms_number);
CREATE INDEX accounts_email_from ON ingest.accounts (lower(email_from));
