-- Optional cap on concurrent calls across all of a partner's campaigns.
ALTER TABLE partners ADD COLUMN max_concurrent_calls integer CHECK (max_concurrent_calls IS NULL OR max_concurrent_calls >= 0);
