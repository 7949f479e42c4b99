-- feed: the A2P 10DLC registration of the account's number, from its directory listing (NULL: never
-- reported, so SMS sends), for SendMessage's refusals and GetAccount.
ALTER TABLE feed.accounts
    ADD COLUMN sms_registration text,
    ADD COLUMN sms_registration_reason text;
