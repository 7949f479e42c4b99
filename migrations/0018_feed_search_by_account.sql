-- feed: the customer search indexes lead with the account (btree_gin), so a search reads only
-- the account's matches instead of every account's and then filtering.
CREATE EXTENSION IF NOT EXISTS btree_gin;
DROP INDEX feed.feed_customers_name;
DROP INDEX feed.feed_customers_phone;
CREATE INDEX feed_customers_name ON feed.customers USING gin (account_id, search_name gin_trgm_ops);
CREATE INDEX feed_customers_phone ON feed.customers USING gin (account_id, phone_digits gin_trgm_ops);
