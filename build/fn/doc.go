// Package fn owns the event type a Go function sees: the CloudEvent that
// called it, with its attributes, extensions and raw data, and the way
// ferry's generated main hands that event to the function through its
// context.
//
// A Go function is a library package with an exported handler:
//
//	func Handle(ctx context.Context, in T) (any, error)
//
// where T is fn.Event (the whole event), []byte (the raw body),
// json.RawMessage (the data as JSON) or any other type, which receives
// the data JSON-decoded (an empty body leaves it the zero value). Whatever
// T is, fn.FromContext(ctx) returns the event. The result may be any type
// (any, a struct, ...) and is answered as JSON; a []byte result is
// answered as is, as application/octet-stream.
//
// The package uses only the standard library: ferry copies it into every
// Go build as the module github.com/ferrycd/ferry, whichever version of
// ferry a function's go.mod asks for.
package fn
