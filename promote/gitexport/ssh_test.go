package gitexport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
)

// Over SSH the right key exports and the server's host key is pinned on
// first use; a wrong key, and a changed host key, fail clearly.
func TestSSH(t *testing.T) {
	key, pub := sshtest.NewKey(t, "")
	srv := sshtest.NewServer(t, pub)
	bare := filepath.Join(t.TempDir(), "gitops.git")
	gitCmd(t, "", "init", "-q", "--bare", "-b", "main", bare)
	url := srv.URL(bare)
	ctx := context.Background()

	e, book := newExporter(t, Config{URL: url, SSHKey: key})
	rel := release(1)
	if err := e.Export(ctx, deployment("prod", 1, rel, "alice"), rel); err != nil {
		t.Fatal(err)
	}
	if f := show(t, bare, "environments/prod/ferry.yaml"); !strings.Contains(f, rel.ID) {
		t.Errorf("environments/prod/ferry.yaml:\n%s", f)
	}
	known, err := os.ReadFile(filepath.Join(e.cfg.Dir, "known_hosts"))
	if err != nil || !strings.HasPrefix(string(known), srv.KnownHost()+" ssh-ed25519 ") || book.count("on first use") != 1 {
		t.Errorf("known_hosts = %q, %v; want the server's key pinned, and logged", known, err)
	}
	// A second export checks the pinned key.
	rel2 := release(2)
	if err := e.Export(ctx, deployment("prod", 2, rel2, "alice"), rel2); err != nil {
		t.Fatal(err)
	}
	if n := commits(t, bare); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}

	wrongKey, wrongPub := sshtest.NewKey(t, "")
	wrong, _ := newExporter(t, Config{URL: url, SSHKey: wrongKey})
	rel3 := release(3)
	err = wrong.Export(ctx, deployment("prod", 3, rel3, "alice"), rel3)
	if err == nil || !strings.Contains(err.Error(), "refused the SSH key "+ssh.FingerprintSHA256(wrongPub)) || !strings.Contains(err.Error(), "deploy keys with write access") {
		t.Errorf("export with a key the server does not know: %v", err)
	}

	newKey := srv.ChangeHostKey()
	err = e.Export(ctx, deployment("prod", 3, rel3, "alice"), rel3)
	if err == nil || !strings.Contains(err.Error(), "host key of") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(newKey)) ||
		!strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("export after the host key changed: %v, want a refusal naming the new key and the known_hosts file", err)
	}
	if n := commits(t, bare); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
}
