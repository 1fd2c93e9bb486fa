// Package sshtest owns a real Git SSH server for tests, as a Git host runs
// one: it accepts one public key and runs git's own upload-pack or
// receive-pack for the repository a client names, so that a fetch or a
// push over SSH goes the whole way, host key checks included.
package sshtest
