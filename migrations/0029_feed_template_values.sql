-- feed: the template variables' values each automatic message's request carried (from its
-- `queued` event), so a business can preview a template with a real job of its own.
ALTER TABLE feed.messages ADD COLUMN template_values jsonb;
