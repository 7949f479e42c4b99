-- Reconciliation asks which of the provider's messages other attempts already hold, so that a
-- second message with the same body to the same customer is never taken for the first.
CREATE INDEX sms_gateway_attempts_provider ON sms_gateway.attempts (provider_id) WHERE provider_id IS NOT NULL;
