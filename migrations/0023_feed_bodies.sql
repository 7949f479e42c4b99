-- The thread shows every message whole: the body beside the 160-character preview the feed lists.
-- Empty when the preview already is the whole text, so a short SMS is stored once.
ALTER TABLE feed.messages ADD COLUMN body text NOT NULL DEFAULT '';
