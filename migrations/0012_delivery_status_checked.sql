-- delivery-status: when the provider was last asked about a message stuck in `sent`.
ALTER TABLE delivery_status.messages ADD COLUMN checked_at timestamptz;
CREATE INDEX delivery_status_messages_stuck ON delivery_status.messages (updated_at) WHERE status = 'sent';
