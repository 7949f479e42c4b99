-- delivery-status: the address each outbound message went to (from the gateways' attempts), so a
-- one-click unsubscribe from that message knows whom to opt out.
ALTER TABLE delivery_status.messages ADD COLUMN recipient text;
