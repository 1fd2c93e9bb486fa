package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"
)

// TestLayerFormat checks every rule that makes a layer's bytes depend only
// on paths, contents and the exec bit.
func TestLayerFormat(t *testing.T) {
	stampTime := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	s := newLayerSpec()
	s.addBytes("ferry/function/z.py", []byte("z"), false)
	s.addBytes("ferry/function/a/run.sh", []byte("#!/bin/sh\n"), true)
	s.addBytes("/ferry/invoker/i.py", []byte("i"), false)
	var buf bytes.Buffer
	digest, diffID, size, err := s.write(&buf, stampTime)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) {
		t.Errorf("size %d, wrote %d", size, buf.Len())
	}
	// The same content written again is the same bytes.
	var again bytes.Buffer
	if d2, _, _, _ := s.write(&again, stampTime); d2 != digest || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("two writes of one layer differ")
	}
	raw := buf.Bytes()
	if raw[4] != 0 || raw[5] != 0 || raw[6] != 0 || raw[7] != 0 || raw[3]&0x08 != 0 {
		t.Error("the gzip header carries a time or a name")
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := sha256Hash(tarBytes); got != diffID {
		t.Errorf("diffID %s, tar hashes to %s", diffID, got)
	}
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(stampTime.Truncate(time.Second)) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if len(h.PAXRecords) != 0 {
			t.Errorf("%s: PAX records %v", h.Name, h.PAXRecords)
		}
		want := int64(0o644)
		if h.Typeflag == tar.TypeDir || h.Name == "ferry/function/a/run.sh" {
			want = 0o755
		}
		if h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	wantNames := []string{"ferry/", "ferry/function/", "ferry/function/a/", "ferry/function/a/run.sh", "ferry/function/z.py", "ferry/invoker/", "ferry/invoker/i.py"}
	if len(names) != len(wantNames) {
		t.Fatalf("entries %v, want %v", names, wantNames)
	}
	for i := range names {
		if names[i] != wantNames[i] {
			t.Fatalf("entries %v, want %v", names, wantNames)
		}
	}
}
