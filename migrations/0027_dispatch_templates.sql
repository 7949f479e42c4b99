-- dispatch: the template version current for each account, type and channel (from the feed's
-- `TemplatePublished` events; a newer version replaces an older one, never the reverse), and
-- which version, if any, each message was rendered from.
CREATE TABLE dispatch.templates (
    account_id   text NOT NULL,
    message_type text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('sms', 'email')),
    version      integer NOT NULL,
    built_in     boolean NOT NULL,
    sms_body     text NOT NULL DEFAULT '',
    subject      text NOT NULL DEFAULT '',
    text_body    text NOT NULL DEFAULT '',
    html_body    text NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, message_type, channel)
);

ALTER TABLE dispatch.messages
    -- NULL: the built-in wording (never customised, reset, or a manual message).
    ADD COLUMN template_version integer,
    -- Why a custom template could not render this message, so the built-in wording went instead.
    ADD COLUMN template_fallback text;
