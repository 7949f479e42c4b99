-- ingest: the A2P 10DLC registration of the account's number, as its account.updated events report
-- it (NULL: never reported, so not tracked and SMS sends).
ALTER TABLE ingest.accounts
    ADD COLUMN sms_registration text,
    ADD COLUMN sms_registration_reason text;
