-- delivery-status: inbound SMS signed for a number the directory does not know yet, kept until an
-- account listing names the number's account (then recorded as if it had just arrived).
CREATE TABLE delivery_status.pending_inbound (
    provider_id text PRIMARY KEY,
    to_number   text NOT NULL,
    from_number text NOT NULL,
    body        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_status_pending_inbound_to ON delivery_status.pending_inbound (to_number);
