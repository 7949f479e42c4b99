-- dispatch: segment counts and refusals on messages, opt-outs that move only forward in time,
-- and the first SMS to each recipient (which carries the opt-out notice).
ALTER TABLE dispatch.messages
    ADD COLUMN segments       integer NOT NULL DEFAULT 0,
    ADD COLUMN encoding       text NOT NULL DEFAULT '',
    -- Set when dispatch itself refused the send (the recipient opted out).
    ADD COLUMN failure_reason text;

ALTER TABLE dispatch.suppressions
    ADD COLUMN opted_out boolean NOT NULL DEFAULT true,
    -- Event time of the opt-out or opt-in this row reflects; an older one never overwrites it.
    ADD COLUMN as_of     timestamptz NOT NULL DEFAULT now();

CREATE TABLE dispatch.sms_recipients (
    account_id       text NOT NULL,
    address          text NOT NULL,
    first_message_id text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, address)
);
