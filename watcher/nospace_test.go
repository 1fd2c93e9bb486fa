package watcher

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitauth"
)

// A fetch that fails because ferry's own disk is full (writing the
// mirror's pack) says so and sends the operator to the data folder's
// disk, not to the repository's path or URL, for a local source and a
// remote one alike.
func TestFetchOnAFullDiskNamesFerrysDisk(t *testing.T) {
	for _, u := range []string{"/srv/repo", "https://git.example.com/team/repo.git"} {
		rem, err := gitauth.Check(u, gitauth.Credentials{}, gitauth.Use{Holder: "the source"})
		if err != nil {
			t.Fatal(err)
		}
		full := &fs.PathError{Op: "write", Path: "/data/mirrors/demo.git/objects/pack/tmp_pack_1", Err: syscall.ENOSPC}
		for _, cause := range []error{full, fmt.Errorf("fetching: %w", full), fmt.Errorf("fetching: %v", full)} {
			msg := explainFetch(context.Background(), cause, rem, "main", time.Minute).Error()
			want := "fetching " + u + ": " + cause.Error() + "; free space on the disk of ferry's data folder (the mirrors are there); the source is fetched again by itself"
			if msg != want {
				t.Errorf("%s:\n got %q\nwant %q", u, msg, want)
			}
			for _, wrong := range []string{"check that the path", "check the URL", "server"} {
				if strings.Contains(msg, wrong) {
					t.Errorf("%s, %v: %q says %q", u, cause, msg, wrong)
				}
			}
			if n := strings.Count(msg, "no space left on device"); n != 1 {
				t.Errorf("%s, %v: %q says the cause %d times", u, cause, msg, n)
			}
		}
	}
}
