-- Webhook deliveries that synced, remembered for a day so that a delivery
-- replayed after a restart is still recognised (see RememberDelivery). The
-- key is a digest of provider, source and delivery id; seen is when it was
-- last delivered, in Unix nanoseconds.
CREATE TABLE webhook_deliveries (
	key  TEXT PRIMARY KEY,
	seen INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_seen ON webhook_deliveries (seen);
