-- A message the provider still calls `sent` long after it was sent: its delivery is unknown.
-- delivery-status says so once; the feed shows it until a later status settles the message.
ALTER TABLE delivery_status.messages ADD COLUMN unknown_reported_at timestamptz;
ALTER TABLE feed.messages ADD COLUMN delivery_unknown boolean NOT NULL DEFAULT false;
