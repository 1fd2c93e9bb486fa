// Package sandbox owns how ferry runs repository code (functions on the
// embedded target, and spec.test.command in the pipeline) so that it never
// holds ferry's power: another user, its own namespaces, a read-only view
// of only what it needs, a private /tmp and a clean environment.
//
// Decisions, and why:
//
//   - bubblewrap (Debian's bubblewrap, the sandbox Flatpak uses), not a
//     home-made container runtime: it is small, kept, and starts in tens of
//     milliseconds, where runc costs about 160 ms here. Find looks for it at
//     start; mode "bwrap" refuses to run without it, "none" runs repository
//     code as ferry (the caller warns loudly), "auto" (ferry run, a
//     developer's own code) uses it when it is there.
//
//   - The user is 65532 by default, or the image's numeric User; never 0.
//     When ferry runs as root, bwrap runs as root WITHOUT a user namespace:
//     it mounts what ferry's data folder (mode 0700) holds, which a bwrap
//     started as 65532 could not reach (bwrap 0.8 resolves even
//     --bind-fd sources by path, with the caller's rights), and util-linux
//     setpriv, run inside, switches to 65532, clears the groups, empties
//     the capability bounding set and sets no_new_privs before the
//     program starts. bwrap keeps only CAP_SETUID, CAP_SETGID and
//     CAP_SETPCAP for setpriv. The program then holds uid 65532 inside and
//     outside, and no capability. When ferry is not root (a developer),
//     bwrap makes a user namespace in which the program is 65532; outside
//     it is the developer's own uid, which is all an unprivileged user can
//     give.
//
//   - Namespaces: pid, mount, ipc, uts and net; a new session (the caller
//     starts bwrap with Setsid, so no terminal of ferry's is reachable and
//     one signal to the group reaches bwrap and the program); death with
//     ferry (bwrap's --die-with-parent, and the caller's Pdeathsig).
//     bwrap does not pass SIGTERM on: a caller that wants a graceful stop
//     signals the program itself (the group's processes but bwrap's two).
//
//   - Network: by default none at all. A function still serves: ferry
//     opens its listening socket on 127.0.0.1:PORT in the host's network
//     and hands it over as file descriptor 3, named by FERRY_LISTEN_FD=3
//     (systemd's LISTEN_FDS needs LISTEN_PID, which a pid namespace
//     renumbers). A socket keeps the namespace it was made in, so the
//     gateway and the health check dial 127.0.0.1:PORT as before, and
//     nothing else can reach the function. The operator may give functions
//     the host's network for egress (sandbox.network: host); they can then
//     also bind ports of their own, which is why it is not the default.
//
//   - What is bound, read-only: the image's top-level folders at /, and,
//     for an image without its own /usr (ferry's scratch images run the
//     host's interpreter), the host's /usr, /lib*, /bin, /sbin and a
//     minimal /etc (certificates, ld.so.cache, localtime, hosts,
//     resolv.conf, and a generated passwd with the sandbox user). The
//     interpreter is looked up on a fixed PATH (/usr/local/bin:/usr/bin:/bin)
//     inside that view, never on ferry's PATH. A Go image (one static
//     binary) gets the host's /usr too. setpriv runs with root's uid and
//     three capabilities, so it is always the host's, never a file of the
//     image: an image with its own /usr gets the host's setpriv, its
//     dynamic loader and its libraries (as ldd lists them at start) under
//     /.ferry-setpriv, and the loader runs it. Read-write: only what the
//     caller binds (the test command's scratch copy of the repository) and
//     /tmp, a tmpfs of the size the caller gives (from spec.memory).
//     Nothing of ferry's data folder (store, mirrors, build cache, other
//     images) is ever visible. A test command has no network either: its
//     dependencies must be in the repository (vendored) or on the host.
//
//   - The environment is exactly what the caller gives (bwrap and setpriv
//     pass theirs on, and ferry gives them only that): no --setenv, so no
//     value shows in bwrap's command line, which every local user can
//     read in /proc.
package sandbox
