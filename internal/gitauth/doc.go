// Package gitauth owns how ferry reaches a Git remote with go-git: checking
// the remote's URL and credentials, building go-git's auth methods for
// HTTPS and SSH with pinned host keys, and explaining transport errors to
// users.
//
// The watcher (which fetches sources) and the GitOps exporter (which
// pushes to a repository) both go through it, so that a URL, a key or a
// refused password reads the same wherever it is given.
//
// # Remotes
//
// Check takes a URL, its Credentials and a Use (fetching or pushing, and
// what the user calls the thing holding the credentials, for messages) and
// returns a Remote, or an error that says what to change. A URL is:
//
//   - a local path (made absolute, since ferry may run from anywhere
//     later) or file:///path, without credentials; go-git runs git's own
//     upload-pack or receive-pack for it, so git must be installed;
//   - https://, with a Username and Password (a token as the password;
//     the username defaults to "git", since hosts ignore it but some
//     refuse an empty one); credentials in the URL itself are refused,
//     so that they never show in messages. Plain http:// carries a
//     password only to this machine, and is refused for pushing to
//     another machine altogether;
//   - ssh:// or user@host:path, with SSHKey, a PEM private key that
//     Password decrypts if it is encrypted, as the URL's user, else
//     Username, else "git";
//   - git://, for fetching only, and without credentials.
//
// # Host keys
//
// HostKeys pins SSH servers' host keys in a known_hosts file: a host the
// file lists must show a key it lists; a host it does not list is trusted
// on first use and added, and logged. Asking the operator for every key
// before the first fetch or push would make every SSH remote fail until
// they did; trust on first use still catches a server whose key changes
// afterwards, which is when an attack would show. An operator who wants no
// first-use trust puts the keys in the file beforehand (ssh-keyscan). A
// host whose key changed is refused with an error naming both keys and the
// file. Remote.Auth gives go-git the SSH auth method, checking host keys
// with HostKeys and bounding the dial by 30 seconds.
//
// # Deadlines
//
// go-git's SSH transport neither passes an operation's context to its
// dial nor bounds the handshake, so a server that accepts and never
// answers would hold a fetch for good. Remote.Bound gives the operation
// ProxyOptions that route the dial through a dialer of this package,
// which closes the connection when the operation's context ends; over
// HTTP(S) go-git follows the context itself.
//
// # Errors
//
// Remote.Explain turns a failed fetch's or push's error into a reason on
// one line and advice: credentials refused or missing, access denied, no
// such repository, an SSH key the server refused, an untrusted
// certificate, an unknown host, a server that cannot be reached, a local
// repository git cannot read or write. The caller says whose operation it
// was (which source, which export) and adds what only it knows, such as a
// missing branch or a timeout.
package gitauth
