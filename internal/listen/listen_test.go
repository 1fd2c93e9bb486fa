package listen

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

// TestTCPBusy: a taken port is named with what moves it, and the error
// is still EADDRINUSE for callers that look.
func TestTCPBusy(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	_, err = TCP(addr, "move the API with --listen")
	if err == nil {
		t.Fatal("listened on a port in use")
	}
	want := addr + " is in use (another ferry, or another program); move the API with --listen"
	if err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("%v is not a BusyError of EADDRINUSE", err)
	}

	// Any other failure keeps its own words and gets the hint.
	_, err = TCP("127.0.0.1:notaport", "move it with --addr")
	if err == nil || errors.As(err, &busy) || !strings.HasSuffix(err.Error(), "; move it with --addr") {
		t.Fatalf("a bad address: %v", err)
	}
}
