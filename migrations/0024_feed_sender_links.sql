-- An unknown sender's thread the business attached to a customer: later messages from that number
-- or address (E.164, or an email address in lower case) join the customer's thread.
CREATE TABLE feed.sender_links (
    account_id text NOT NULL,
    address text NOT NULL,
    customer_id text NOT NULL,
    linked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, address)
);
