-- Secrets of environments (ferry secrets set ENV NAME), which functions
-- read through env valueFrom. value is sealed by the server (internal/seal,
-- "sealed:v1:..."); the store neither seals nor opens it. created and
-- updated are Unix nanoseconds.
CREATE TABLE env_secrets (
	environment TEXT NOT NULL,
	name        TEXT NOT NULL,
	value       TEXT NOT NULL,
	created     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	PRIMARY KEY (environment, name)
) STRICT;
