-- feed: a resend (ResendMessage) names the failed message it resends, and the failed message
-- names its latest resend, so a thread shows them linked.
ALTER TABLE feed.messages
    ADD COLUMN resent_from text,
    ADD COLUMN resent_as text;
