// Package saysonce checks that an error message says each thing once:
// no layer repeats what a layer below it said already ("function hello:
// function hello: …"). Tests use it on the messages of real failures.
package saysonce
