-- ferry's first schema. Times are INTEGER unix nanoseconds in UTC, NULL for
-- the zero time. Ids are AUTOINCREMENT so one is never reused: a page's
-- Before and a log follower's "after" stay valid even if old rows go.

-- Sources as configured. The status goes with its source; events stay, as
-- history.
CREATE TABLE sources (
	name           TEXT PRIMARY KEY,
	url            TEXT NOT NULL,
	branch         TEXT NOT NULL,
	interval_ns    INTEGER NOT NULL,
	webhook_secret TEXT NOT NULL,
	username       TEXT NOT NULL,
	password       TEXT NOT NULL,
	ssh_key        TEXT NOT NULL,
	from_config    INTEGER NOT NULL,
	created        INTEGER
) STRICT;

CREATE TABLE source_status (
	source      TEXT PRIMARY KEY REFERENCES sources (name) ON DELETE CASCADE,
	last_commit TEXT NOT NULL DEFAULT '',
	last_fetch  INTEGER,
	last_error  TEXT NOT NULL DEFAULT '',
	failures    INTEGER NOT NULL DEFAULT 0,
	next_fetch  INTEGER
) STRICT;

CREATE TABLE source_events (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	source    TEXT NOT NULL,
	branch    TEXT NOT NULL,
	previous  TEXT NOT NULL,
	commit_id TEXT NOT NULL,
	forced    INTEGER NOT NULL,
	at        INTEGER
) STRICT;
CREATE INDEX source_events_by_source ON source_events (source, id);

-- Pipeline runs: one per commit of a source's branch.
CREATE TABLE runs (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	source     TEXT NOT NULL,
	branch     TEXT NOT NULL,
	commit_id  TEXT NOT NULL,
	status     TEXT NOT NULL,
	reason     TEXT NOT NULL,
	release_id TEXT NOT NULL,
	created    INTEGER,
	started    INTEGER,
	ended      INTEGER,
	UNIQUE (source, branch, commit_id)
) STRICT;
CREATE INDEX runs_by_source ON runs (source, id);
CREATE INDEX runs_unfinished ON runs (id) WHERE status IN ('queued', 'running');

CREATE TABLE steps (
	run      INTEGER NOT NULL REFERENCES runs (id),
	name     TEXT NOT NULL,
	position INTEGER NOT NULL,
	status   TEXT NOT NULL,
	reason   TEXT NOT NULL,
	started  INTEGER,
	ended    INTEGER,
	PRIMARY KEY (run, name)
) STRICT;

CREATE TABLE logs (
	seq  INTEGER PRIMARY KEY AUTOINCREMENT,
	run  INTEGER NOT NULL REFERENCES runs (id),
	step TEXT NOT NULL,
	at   INTEGER,
	line TEXT NOT NULL
) STRICT;
CREATE INDEX logs_by_run ON logs (run, seq);

-- Builds and releases.
CREATE TABLE builds (
	source    TEXT NOT NULL,
	commit_id TEXT NOT NULL,
	function  TEXT NOT NULL,
	cache_key TEXT NOT NULL,
	image     TEXT NOT NULL,
	cached    INTEGER NOT NULL,
	at        INTEGER,
	PRIMARY KEY (source, commit_id, function)
) STRICT;

CREATE TABLE releases (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	id        TEXT NOT NULL UNIQUE,
	source    TEXT NOT NULL,
	commit_id TEXT NOT NULL,
	ref       TEXT NOT NULL,
	manifest  BLOB,
	run       INTEGER NOT NULL,
	created   INTEGER,
	UNIQUE (source, commit_id)
) STRICT;
CREATE INDEX releases_by_source ON releases (source, seq);

-- Environments and what was deployed to them.
CREATE TABLE environments (
	name       TEXT PRIMARY KEY,
	target     TEXT NOT NULL,
	release_id TEXT NOT NULL,
	held       INTEGER NOT NULL,
	updated    INTEGER
) STRICT;

CREATE TABLE deployments (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	environment TEXT NOT NULL,
	release_id  TEXT NOT NULL,
	previous    TEXT NOT NULL,
	actor       TEXT NOT NULL,
	promotion   INTEGER NOT NULL,
	run         INTEGER NOT NULL,
	status      TEXT NOT NULL,
	reason      TEXT NOT NULL,
	at          INTEGER
) STRICT;
CREATE INDEX deployments_by_environment ON deployments (environment, id);

-- Promotions and their approvals.
CREATE TABLE promotions (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	release_id  TEXT NOT NULL,
	environment TEXT NOT NULL,
	status      TEXT NOT NULL,
	requester   TEXT NOT NULL,
	reason      TEXT NOT NULL,
	pinned      INTEGER NOT NULL,
	created     INTEGER,
	updated     INTEGER
) STRICT;
CREATE INDEX promotions_by_environment ON promotions (environment, id);

CREATE TABLE approvals (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	promotion INTEGER NOT NULL REFERENCES promotions (id),
	actor     TEXT NOT NULL,
	approve   INTEGER NOT NULL,
	comment   TEXT NOT NULL,
	at        INTEGER
) STRICT;
CREATE INDEX approvals_by_promotion ON approvals (promotion, id);

-- The audit log. The triggers make append-only a property of the file, not
-- only of the Go API.
CREATE TABLE events (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	object TEXT NOT NULL,
	detail TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_object ON events (object, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
