-- Outbox rows that can never be published (larger than the broker's largest message), moved aside
-- with the reason so the relay goes on with the rows behind them. Kept whole for an operator.
CREATE TABLE ingest.outbox_rejected (
    id          text PRIMARY KEY,
    subject     text NOT NULL,
    payload     bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}',
    reason      text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE dispatch.outbox_rejected (LIKE ingest.outbox_rejected INCLUDING ALL);
CREATE TABLE sms_gateway.outbox_rejected (LIKE ingest.outbox_rejected INCLUDING ALL);
CREATE TABLE email_gateway.outbox_rejected (LIKE ingest.outbox_rejected INCLUDING ALL);
CREATE TABLE delivery_status.outbox_rejected (LIKE ingest.outbox_rejected INCLUDING ALL);
CREATE TABLE feed.outbox_rejected (LIKE ingest.outbox_rejected INCLUDING ALL);
