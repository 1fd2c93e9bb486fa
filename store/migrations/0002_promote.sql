-- What package promote keeps: freeze and hold state per environment, the
-- kind and verification of each deployment, what made each promotion, the
-- kind of each release, and one promotion at a time per environment.
-- Every column added has a default, so rows written before stay valid.

ALTER TABLE environments ADD COLUMN hold_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN freeze_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN frozen_by TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN frozen_at INTEGER;

-- kind: '' a deploy, 'rollback', 'auto-rollback'. verification: '' when no
-- check ran, else pending, passed, failed or none.
ALTER TABLE deployments ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN verification TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN verified INTEGER;
CREATE INDEX deployments_by_release ON deployments (release_id, environment);
CREATE INDEX deployments_by_run ON deployments (run) WHERE run != 0;

ALTER TABLE promotions ADD COLUMN run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE promotions ADD COLUMN parent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE promotions ADD COLUMN deployment INTEGER NOT NULL DEFAULT 0;
CREATE INDEX promotions_by_status ON promotions (status, id);
CREATE INDEX promotions_by_release ON promotions (release_id, environment);
CREATE INDEX promotions_by_run ON promotions (run) WHERE run != 0;
CREATE INDEX promotions_by_parent ON promotions (parent) WHERE parent != 0;
-- The lock of an environment: one promotion deploying or verifying at a
-- time. It is a row, so it survives a restart, and the file enforces it.
CREATE UNIQUE INDEX promotions_one_active ON promotions (environment)
	WHERE status IN ('deploying', 'verifying');

-- Releases: a commit has one release made by the pipeline (which relies on
-- that to run a commit once), but a rollback may make more from it: a
-- release with one function's image pinned, or one pulled back from the
-- registry. SQLite cannot drop the table's UNIQUE (source, commit_id), so
-- the table is rebuilt with every row and seq kept, and the rule becomes a
-- partial index on pipeline releases.
CREATE TABLE releases_0002 (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	id        TEXT NOT NULL UNIQUE,
	source    TEXT NOT NULL,
	commit_id TEXT NOT NULL,
	ref       TEXT NOT NULL,
	manifest  BLOB,
	run       INTEGER NOT NULL,
	created   INTEGER,
	kind      TEXT NOT NULL DEFAULT 'pipeline',
	based_on  TEXT NOT NULL DEFAULT ''
) STRICT;
INSERT INTO releases_0002 (seq, id, source, commit_id, ref, manifest, run, created)
	SELECT seq, id, source, commit_id, ref, manifest, run, created FROM releases;
DROP TABLE releases;
ALTER TABLE releases_0002 RENAME TO releases;
CREATE UNIQUE INDEX releases_by_commit ON releases (source, commit_id) WHERE kind = 'pipeline';
CREATE INDEX releases_by_source ON releases (source, seq);
