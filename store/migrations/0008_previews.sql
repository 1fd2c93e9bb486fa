-- Pull-request runs and previews.
--
-- A run's pull_request is the number of the pull (merge) request it runs
-- for, 0 for a run of the source's branch. A pull request's run has the
-- branch pull/N (GitHub) or merge-requests/N (GitLab), so that
-- (source, branch, commit) stays unique and a pull request's commit that
-- is also the branch's gets a run of its own.
ALTER TABLE runs ADD COLUMN pull_request INTEGER NOT NULL DEFAULT 0;

-- Previews: the environment ferry keeps for each open pull request of a
-- source whose Pipeline enables previews. A torn-down preview stays as
-- history (state 'torn down', with when and why) until the request opens
-- again. Times are Unix nanoseconds; ttl_ns is the Pipeline's
-- previews.ttl read when the preview was opened.
CREATE TABLE previews (
	source       TEXT NOT NULL,
	number       INTEGER NOT NULL,
	environment  TEXT NOT NULL,
	head_commit  TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL,
	reason       TEXT NOT NULL DEFAULT '',
	fork         INTEGER NOT NULL DEFAULT 0,
	approved     TEXT NOT NULL DEFAULT '',
	author       TEXT NOT NULL DEFAULT '',
	title        TEXT NOT NULL DEFAULT '',
	web_url      TEXT NOT NULL DEFAULT '',
	release_id   TEXT NOT NULL DEFAULT '',
	ttl_ns       INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL,
	activity     INTEGER NOT NULL,
	torn_down    INTEGER,
	torn_reason  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (source, number)
) STRICT;
CREATE UNIQUE INDEX previews_by_env ON previews (environment);
