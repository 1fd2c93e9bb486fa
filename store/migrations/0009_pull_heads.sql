-- Pull (merge) requests the watcher saw open on a source's remote, with
-- the head it last saw, so that a restart neither announces them again nor
-- misses what changed while ferry was down.
CREATE TABLE pull_heads (
	source TEXT NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
	number INTEGER NOT NULL,
	commit_hash TEXT NOT NULL,
	PRIMARY KEY (source, number)
) STRICT;

-- A source's row says its first listing was recorded: the requests open
-- then were taken as they were, announced to nobody. Without the row the
-- next listing is that first one again.
CREATE TABLE pull_baselines (
	source TEXT PRIMARY KEY REFERENCES sources (name) ON DELETE CASCADE
) STRICT;
