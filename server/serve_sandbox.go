package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ferrycd/ferry/internal/sandbox"
)

// privateDataDir creates the data folder at mode 0700, or brings an
// existing one back to it: it holds the store with every secret, the
// mirrors and the caches, which no other user (nor repository code run
// without a sandbox) may read.
func privateDataDir(dir string, logf func(string, ...any)) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the data folder %s: %w", dir, err)
		}
		return os.Chmod(dir, 0o700) // MkdirAll's mode passes the umask
	case err != nil:
		return fmt.Errorf("the data folder %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("the data folder %s is not a folder: change dataDir in the configuration", dir)
	case fi.Mode().Perm() != 0o700:
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("the data folder %s has mode %s and cannot be made 0700: %w", dir, fi.Mode().Perm(), err)
		}
		logf("data folder %s had mode %s: changed to 0700 (it holds secrets only ferry may read)", dir, fi.Mode().Perm())
	}
	return nil
}

// startSandbox finds the sandbox the configuration asks for; without one
// it says loudly, on every start, that repository code runs as ferry.
func startSandbox(ctx context.Context, cfg *Config, logf func(string, ...any)) (*sandbox.Sandbox, error) {
	sb, err := sandbox.Find(ctx, sandbox.Mode(cfg.Sandbox.Mode), sandbox.Network(cfg.Sandbox.Network))
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if !sb.Enabled() {
		logf("WARNING: sandbox: none in the configuration: functions and test commands from Git run as ferry's own user and can read every secret ferry holds; set sandbox: {mode: bwrap} once bubblewrap is installed")
	} else {
		logf("sandbox: %s (repository code runs as uid %d in namespaces of its own)", sb, sandbox.DefaultUID)
	}
	return sb, nil
}
