-- The outbox: notices to deliver to places outside ferry (GitHub, chat,
-- generic webhooks), kept here so that a restart or an outage loses none.
-- A row is deleted once delivered. key, when not '', names what the notice
-- is about (a commit's status, a pull request's comment): a newer notice
-- for the same sink and key replaces the body of one not yet delivered,
-- and version counts such replacements, so that a delivery of the older
-- body does not delete the newer one. Times are Unix nanoseconds.
CREATE TABLE outbox (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	sink       TEXT NOT NULL,
	key        TEXT NOT NULL DEFAULT '',
	body       BLOB NOT NULL,
	version    INTEGER NOT NULL DEFAULT 1,
	attempts   INTEGER NOT NULL DEFAULT 0,
	next_at    INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT '',
	created    INTEGER NOT NULL
) STRICT;

CREATE INDEX outbox_due ON outbox (sink, next_at, id);
CREATE UNIQUE INDEX outbox_one_per_key ON outbox (sink, key) WHERE key <> '';

-- Memos: what a sink learned and needs again (the id of a pull request's
-- comment, of a GitHub deployment), so that it edits rather than repeats.
CREATE TABLE memos (
	key     TEXT PRIMARY KEY,
	value   TEXT NOT NULL,
	updated INTEGER NOT NULL
) STRICT;
