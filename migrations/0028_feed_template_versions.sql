-- feed: the version of the account's template each message was worded by (NULL: the built-in
-- wording, a manual message or a reply), and why a template could not word it.
ALTER TABLE feed.messages
    ADD COLUMN template_version integer,
    ADD COLUMN template_fallback text;
