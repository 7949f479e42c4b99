-- sms_gateway: per sending number, the earliest moment the next segment may go (a virtual
-- schedule shared by every gateway process, so the rate limit holds across any number of them).
CREATE TABLE sms_gateway.sender_pace (
    sender  text PRIMARY KEY,
    next_at timestamptz NOT NULL
);
