-- A run that failed because ferry could not write the store (a full disk),
-- not on its own merits: the next start runs it again from its first
-- unfinished step when its commit is still the branch head.
ALTER TABLE runs ADD COLUMN store_failed INTEGER NOT NULL DEFAULT 0;
