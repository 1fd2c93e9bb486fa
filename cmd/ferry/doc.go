// Command ferry is the CLI of ferry. Each subcommand lives in its own file,
// parses its flags and calls a package; no logic lives here that a test
// would want, and the end-to-end tests in test/ run the built binary.
package main
