-- sms_gateway: old rate-limit slots are forgotten by age.
CREATE INDEX sms_gateway_pace_reservations_slot ON sms_gateway.pace_reservations (slot_at);
