-- delivery-status: each email's opaque one-click unsubscribe token (a keyed hash of its id).
ALTER TABLE delivery_status.messages ADD COLUMN unsubscribe_token text;
CREATE UNIQUE INDEX delivery_status_messages_unsubscribe ON delivery_status.messages (unsubscribe_token)
    WHERE unsubscribe_token IS NOT NULL;
