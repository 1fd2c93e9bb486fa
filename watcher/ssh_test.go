package watcher

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
	"github.com/ferrycd/ferry/store"
)

// Over SSH the right key fetches, and the server's host key is pinned on
// first use; a wrong key, and a changed host key, fail clearly.
func TestSSH(t *testing.T) {
	key, pub := sshtest.NewKey(t, "")
	wrongKey, wrongPub := sshtest.NewKey(t, "")
	srv := sshtest.NewServer(t, pub)
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	head := repo.commit(nil)
	repo.push()
	url := srv.URL(repo.bare)

	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "good", URL: url, SSHKey: key})
	tw.sync(t, "good")
	if st, _ := tw.Status("good"); st.LastCommit != head || st.LastError != "" {
		t.Fatalf("with the right key: %+v", st)
	}
	known, err := os.ReadFile(filepath.Join(tw.dir, "known_hosts"))
	if err != nil || !strings.Contains(string(known), srv.KnownHost()+" ssh-ed25519 ") {
		t.Errorf("known_hosts = %q, %v; want the server's key pinned", known, err)
	}
	// A second fetch checks the pinned key, and a new commit arrives.
	second := repo.commit(nil)
	repo.push()
	tw.sync(t, "good")
	if st, _ := tw.Status("good"); st.LastCommit != second {
		t.Fatalf("second fetch over SSH: %+v", st)
	}

	tw.add(t, store.Source{Name: "wrong", URL: url, SSHKey: wrongKey})
	err = tw.Sync(context.Background(), "wrong")
	fp := ssh.FingerprintSHA256(wrongPub)
	if err == nil || !strings.Contains(err.Error(), "refused the SSH key "+fp) {
		t.Fatalf("Sync with a wrong key: %v, want it to say the key %s was refused", err, fp)
	}
	if st, _ := tw.Status("wrong"); st.Failures < 1 || !strings.Contains(st.LastError, "deploy keys") || st.LastCommit != "" {
		t.Errorf("status with a wrong key: %+v", st)
	}

	// The server's host key changes: refused, saying what to do.
	newKey := srv.ChangeHostKey()
	err = tw.Sync(context.Background(), "good")
	if err == nil || !strings.Contains(err.Error(), "host key of") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(newKey)) ||
		!strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("Sync after the host key changed: %v, want a refusal naming the new key and the known_hosts file", err)
	}
	if st, _ := tw.Status("good"); st.LastCommit != second || st.Failures != 1 {
		t.Errorf("status after the host key changed: %+v", st)
	}
}

// An encrypted key is decrypted with the source's password.
func TestSSHEncryptedKey(t *testing.T) {
	key, pub := sshtest.NewKey(t, "open sesame")
	srv := sshtest.NewServer(t, pub)
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	head := repo.commit(nil)
	repo.push()
	tw := startWatcher(t, Config{})
	src := store.Source{Name: "enc", URL: srv.URL(repo.bare), SSHKey: key, Branch: "main", Interval: time.Hour}
	if err := tw.Add(context.Background(), src); err == nil {
		t.Error("an encrypted key without its passphrase was accepted")
	}
	src.Password = "open sesame"
	tw.add(t, src)
	tw.sync(t, "enc")
	if st, _ := tw.Status("enc"); st.LastCommit != head {
		t.Errorf("status %+v", st)
	}
}
