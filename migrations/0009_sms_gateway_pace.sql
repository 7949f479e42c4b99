-- sms_gateway: per sending number, the earliest moment the next segment may go (a virtual
-- schedule shared by every gateway process, so the rate limit holds across any number of them).
CREATE TABLE sms_gateway.sender_pace (
    sender  text PRIMARY KEY,
    next_at timestamptz NOT NULL
);

-- The slot each message reserved: a message sent back to wait for its slot keeps it when it returns,
-- so waiting costs one redelivery, not one per try.
CREATE TABLE sms_gateway.pace_reservations (
    message_id text PRIMARY KEY,
    sender     text NOT NULL,
    slot_at    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
