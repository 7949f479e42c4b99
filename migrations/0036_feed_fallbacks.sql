-- feed: marks both messages of an SMS→email fallback (the failed automatic SMS and the email sent in
-- its place), which are linked like a resend (resent_from / resent_as).
ALTER TABLE feed.messages
    ADD COLUMN fallback boolean NOT NULL DEFAULT false;
