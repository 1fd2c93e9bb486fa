-- A source's fetch timeout, in nanoseconds: what bounds each fetch of it,
-- connect and handshake included. 0 is the watcher's default (60 s).
ALTER TABLE sources ADD COLUMN timeout_ns INTEGER NOT NULL DEFAULT 0;
