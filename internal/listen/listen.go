package listen

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// TCP listens on addr; when it cannot, the error says so with move, what
// moves this listener ("move the API with --listen").
func TCP(addr, move string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, Explain(err, addr, move)
	}
	return ln, nil
}

// Explain is err, from listening on addr, with what to do: when the port
// is taken, that it is and move; otherwise err followed by move.
func Explain(err error, addr, move string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &BusyError{Addr: addr, Move: move, Err: err}
	}
	return fmt.Errorf("%w; %s", err, move)
}

// BusyError is a listen address another program holds.
type BusyError struct {
	Addr string
	// Move says how to give this listener another address.
	Move string
	Err  error
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is in use (another ferry, or another program); %s", e.Addr, e.Move)
}

func (e *BusyError) Unwrap() error { return e.Err }
