// Package hello is ferry's Go example: a function that greets and echoes
// the data of the event that called it. ferry builds it into an image with
// a main of its own that serves Handle over HTTP.
package hello
