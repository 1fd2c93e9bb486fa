// Package listen owns how ferry opens its TCP listeners: a port already
// taken is the commonest mistake at start, so the error names the port
// and the flag, configuration key or variable that moves it.
package listen
