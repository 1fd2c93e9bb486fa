// Package registry owns ferry's embedded OCI registry: the
// distribution/distribution registry, served on a loopback address with
// filesystem storage under ferry's data folder, so images and release
// artifacts have somewhere to go with no set-up, and survive a restart.
//
// The registry has no authentication. It listens on loopback addresses
// only, unless Config.Public says the operator has put their own
// authentication in front of it.
//
// Distribution logs through logrus's standard logger. New installs, once
// per process, a formatter on that logger that sends every entry of an
// embedded registry to its Config.Log (warnings and errors only) and
// passes every other entry to the formatter that was there before, so
// other users of logrus in the process are not silenced. The upload
// purger's two info lines, which carry no registry, are dropped.
package registry
