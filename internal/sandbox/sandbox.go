package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mode says whether repository code runs in the sandbox.
type Mode string

const (
	// ModeBwrap requires bubblewrap: ferry serve's default.
	ModeBwrap Mode = "bwrap"
	// ModeNone runs repository code as ferry itself.
	ModeNone Mode = "none"
	// ModeAuto uses bubblewrap when it is there and works (ferry run).
	ModeAuto Mode = "auto"
)

// Network says what network sandboxed code has.
type Network string

const (
	// NetworkNone: a network namespace of its own with only a loopback
	// nobody else shares. Functions still serve, on the socket ferry
	// hands over.
	NetworkNone Network = "none"
	// NetworkHost: the host's network, for egress.
	NetworkHost Network = "host"
)

const (
	// DefaultUID is the user (and group) sandboxed code runs as when the
	// image names none: distroless's "nonroot", so images made for
	// Kubernetes agree.
	DefaultUID = 65532
	// SystemPath is the PATH inside the sandbox, and where an interpreter
	// named by a bare name is looked up: fixed, so ferry's own PATH (which
	// may name folders only ferry can read) never decides what runs.
	SystemPath = "/usr/local/bin:/usr/bin:/bin"
	// DefaultTmpSize bounds /tmp when the caller gives no size.
	DefaultTmpSize = 64 << 20
	// checkTimeout bounds Find's self-check (a sandbox running /bin/true,
	// tens of milliseconds).
	checkTimeout = 20 * time.Second
)

// systemDirs are the host folders an image without its own /usr gets,
// read-only.
var systemDirs = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// etcFiles are the host's /etc entries such an image gets: what a
// program needs to resolve names, check certificates and tell the time.
var etcFiles = []string{"ssl", "ca-certificates", "ca-certificates.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
	"localtime", "hosts", "resolv.conf", "nsswitch.conf", "alternatives", "mime.types"}

// Sandbox runs programs confined as the package documentation says. The
// zero value (and Find with ModeNone) runs them as ferry.
type Sandbox struct {
	bwrap   string // "" when not sandboxing
	setpriv string // host path of setpriv, when ferry is root
	// setprivLoader and setprivLibs are the dynamic loader and the
	// libraries (soname -> host path) the host's setpriv needs, bound
	// beside it into images that have a /usr of their own.
	setprivLoader string
	setprivLibs   map[string]string
	asRoot        bool
	network       Network
	note          string // why a ModeAuto sandbox is off
}

// Find returns the sandbox of mode with network (empty: none). Mode bwrap
// fails when bubblewrap is missing or cannot make namespaces here; mode
// auto then runs without one and Note says why.
func Find(ctx context.Context, mode Mode, network Network) (*Sandbox, error) {
	if network == "" {
		network = NetworkNone
	}
	if network != NetworkNone && network != NetworkHost {
		return nil, fmt.Errorf("sandbox network %q is not known (use none or host)", network)
	}
	switch mode {
	case ModeNone:
		return &Sandbox{network: NetworkHost}, nil
	case ModeBwrap, ModeAuto, "":
	default:
		return nil, fmt.Errorf("sandbox mode %q is not known (use bwrap, none or auto)", mode)
	}
	s, err := find(ctx, network)
	if err != nil {
		if mode == ModeAuto {
			return &Sandbox{network: NetworkHost, note: err.Error()}, nil
		}
		return nil, err
	}
	return s, nil
}

func find(ctx context.Context, network Network) (*Sandbox, error) {
	bwrap, err := lookSystem("bwrap")
	if err != nil {
		return nil, fmt.Errorf("bubblewrap (bwrap) is not installed: install Debian's bubblewrap package (hack/deps.sh does), or set sandbox: {mode: none} to run repository code as ferry itself")
	}
	s := &Sandbox{bwrap: bwrap, asRoot: os.Geteuid() == 0, network: network}
	if s.asRoot {
		if s.setpriv, err = lookSystem("setpriv"); err != nil {
			return nil, fmt.Errorf("setpriv (util-linux) is not installed: the sandbox needs it to drop to its user when ferry runs as root; install util-linux")
		}
		if s.setprivLoader, s.setprivLibs, err = sharedDeps(ctx, s.setpriv); err != nil {
			return nil, err
		}
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// check runs /bin/true in a sandbox: user and other namespaces may be
// forbidden here (a container without them, a sysctl), which is better
// said at start than at the first deploy.
func (s *Sandbox) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	c, err := s.CommandContext(ctx, Spec{Program: "true"})
	if err != nil {
		return err
	}
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Run(); err != nil {
		return fmt.Errorf("bubblewrap (%s) cannot make a sandbox on this machine: %w: %s (user or mount namespaces may be forbidden here: allow them, or set sandbox: {mode: none})", s.bwrap, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Enabled reports whether programs run confined.
func (s *Sandbox) Enabled() bool { return s != nil && s.bwrap != "" }

// Note says why a ModeAuto sandbox is off; empty otherwise.
func (s *Sandbox) Note() string {
	if s == nil {
		return ""
	}
	return s.note
}

// Network is the network sandboxed code has.
func (s *Sandbox) Network() Network {
	if !s.Enabled() {
		return NetworkHost
	}
	return s.network
}

// String is the mode as ferry status shows it.
func (s *Sandbox) String() string {
	if !s.Enabled() {
		return "none (repository code runs as ferry!)"
	}
	if s.network == NetworkHost {
		return "bwrap (network: host)"
	}
	return "bwrap"
}

// Bind is a host folder or file seen at Dest inside the sandbox.
type Bind struct {
	Src, Dest string
	Write     bool
}

// Spec is one program to run confined.
type Spec struct {
	// Root is a host folder (an unpacked image) whose top-level entries
	// are seen at /, read-only. Empty: the host's system folders only.
	Root string
	// Program is a path inside the sandbox, or a bare name looked up on
	// Path (default SystemPath) inside it.
	Program string
	Path    string
	Args    []string
	// Env is the program's whole environment; nothing of ferry's is added.
	Env []string
	// Dir is the working folder inside the sandbox (default /).
	Dir   string
	Binds []Bind
	// TmpSize is /tmp's size in bytes (default DefaultTmpSize).
	TmpSize int64
	// UID runs the program as this user and group (default DefaultUID);
	// 0 cannot be asked for.
	UID int
	// ExtraFiles are handed to the program as file descriptors 3, 4, ...
	ExtraFiles []*os.File
}

// Cmd is a program ready to start. Start and Run close what the sandbox
// needed only until the start.
type Cmd struct {
	*exec.Cmd
	after []*os.File
}

// Start starts the program.
func (c *Cmd) Start() error {
	err := c.Cmd.Start()
	for _, f := range c.after {
		f.Close()
	}
	c.after = nil
	return err
}

// Run starts the program and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Command returns spec's program, confined when the sandbox is enabled,
// else run as ferry with the same paths resolved on the host. The caller
// sets SysProcAttr, output and the like; a confined program must start in
// a session of its own (Setsid), so it has no controlling terminal to
// push keystrokes into (bwrap's --new-session would put the program in a
// session apart from the bwrap processes, out of the caller's process
// group).
func (s *Sandbox) Command(spec Spec) (*Cmd, error) {
	return s.CommandContext(context.Background(), spec)
}

// CommandContext is Command, killing the program (through the caller's
// cmd.Cancel, else its process) when ctx ends.
func (s *Sandbox) CommandContext(ctx context.Context, spec Spec) (*Cmd, error) {
	if spec.UID == 0 {
		spec.UID = DefaultUID
	}
	if spec.UID < 0 {
		return nil, fmt.Errorf("sandbox user %d is not a user id", spec.UID)
	}
	if spec.TmpSize <= 0 {
		spec.TmpSize = DefaultTmpSize
	}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	hostSystem := spec.Root == "" || !isDir(filepath.Join(spec.Root, "usr"))
	program, err := s.lookProgram(spec, hostSystem)
	if err != nil {
		return nil, err
	}
	if !s.Enabled() {
		// why: the arguments that name files of the image (a script)
		// are named as the sandbox would see them; here they are the host's.
		args := make([]string, len(spec.Args))
		for i, a := range spec.Args {
			args[i] = a
			if path.IsAbs(a) {
				args[i] = s.hostPath(spec, a)
			}
		}
		c := exec.CommandContext(ctx, s.hostPath(spec, program), args...)
		c.Dir = s.hostPath(spec, spec.Dir)
		c.Env = spec.Env
		c.ExtraFiles = spec.ExtraFiles
		return &Cmd{Cmd: c}, nil
	}

	// why: a hostname of its own, so the host's name is not told either.
	args := []string{"--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox"}
	if s.network == NetworkNone {
		args = append(args, "--unshare-net")
	}
	uid := strconv.Itoa(spec.UID)
	if s.asRoot {
		// why: setpriv needs these three to drop to the user, the groups
		// and the bounding set; it gives them up before the program runs.
		args = append(args, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
	} else {
		args = append(args, "--unshare-user", "--uid", uid, "--gid", uid)
	}
	have := map[string]bool{}
	if spec.Root != "" {
		entries, err := os.ReadDir(spec.Root)
		if err != nil {
			return nil, fmt.Errorf("sandbox root %s: %w", spec.Root, err)
		}
		for _, e := range entries {
			name := e.Name()
			if name == "proc" || name == "dev" || name == "tmp" {
				continue // the sandbox's own
			}
			have[name] = true
			src := filepath.Join(spec.Root, name)
			if e.Type()&os.ModeSymlink != 0 {
				target, err := os.Readlink(src)
				if err != nil {
					return nil, fmt.Errorf("sandbox root %s: %w", spec.Root, err)
				}
				args = append(args, "--symlink", target, "/"+name)
				continue
			}
			args = append(args, "--ro-bind", src, "/"+name)
		}
	}
	var after []*os.File
	extra := append([]*os.File(nil), spec.ExtraFiles...)
	if hostSystem {
		for _, d := range systemDirs {
			if have[d] {
				continue
			}
			host := "/" + d
			fi, err := os.Lstat(host)
			switch {
			case err != nil:
				continue
			case fi.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(host)
				if err != nil {
					continue
				}
				args = append(args, "--symlink", target, host)
			case fi.IsDir():
				args = append(args, "--ro-bind", host, host)
			}
		}
		if !have["etc"] {
			// why: bwrap would make /etc for the binds below 0700, root's.
			args = append(args, "--perms", "0755", "--dir", "/etc")
			for _, f := range etcFiles {
				args = append(args, "--ro-bind-try", "/etc/"+f, "/etc/"+f)
			}
			// why: programs that ask who they are (Python's getpass, git)
			// need a passwd line for the sandbox user.
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			fmt.Fprintf(w, "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:%s:%s:sandbox:/tmp:/usr/sbin/nologin\n", uid, uid)
			w.Close()
			fd := 3 + len(extra)
			extra = append(extra, r)
			after = append(after, r)
			args = append(args, "--perms", "0644", "--ro-bind-data", strconv.Itoa(fd), "/etc/passwd")
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev",
		"--perms", "1777", "--size", strconv.FormatInt(spec.TmpSize, 10), "--tmpfs", "/tmp")
	for _, b := range spec.Binds {
		flag := "--ro-bind"
		if b.Write {
			flag = "--bind"
		}
		args = append(args, flag, b.Src, b.Dest)
	}
	var drop []string
	if s.asRoot {
		// why: the drop runs with root's uid and three capabilities, so it
		// must be the host's setpriv, never a file of the image: an image
		// with its own /usr gets the host's setpriv, its loader and its
		// libraries under setprivDir, and the loader runs it.
		drop = []string{s.setpriv}
		if !hostSystem {
			args = append(args, "--ro-bind", s.setpriv, setprivDir+"/setpriv")
			drop = []string{setprivDir + "/setpriv"}
			if s.setprivLoader != "" {
				args = append(args, "--ro-bind", s.setprivLoader, setprivDir+"/ld.so")
				for name, host := range s.setprivLibs {
					args = append(args, "--ro-bind", host, setprivDir+"/lib/"+name)
				}
				drop = []string{setprivDir + "/ld.so", "--library-path", setprivDir + "/lib", setprivDir + "/setpriv"}
			}
		}
		drop = append(drop, "--reuid", uid, "--regid", uid, "--clear-groups",
			"--no-new-privs", "--bounding-set", "-all", "--inh-caps", "-all", "--")
	}
	args = append(args, "--remount-ro", "/", "--chdir", spec.Dir, "--")
	args = append(args, drop...)
	args = append(args, program)
	args = append(args, spec.Args...)
	c := exec.CommandContext(ctx, s.bwrap, args...)
	c.Env = spec.Env
	c.ExtraFiles = extra
	return &Cmd{Cmd: c, after: after}, nil
}

// lookProgram returns the program's path inside the sandbox: a bare name
// is looked up on SystemPath in what the sandbox will see.
func (s *Sandbox) lookProgram(spec Spec, hostSystem bool) (string, error) {
	if strings.ContainsRune(spec.Program, '/') {
		if !path.IsAbs(spec.Program) {
			return "", fmt.Errorf("sandbox program %q must be an absolute path or a bare name", spec.Program)
		}
		return spec.Program, nil
	}
	if spec.Program == "" {
		return "", errors.New("sandbox: no program to run")
	}
	search := cmp.Or(spec.Path, SystemPath)
	for _, dir := range filepath.SplitList(search) {
		p := path.Join(dir, spec.Program)
		host := p
		if !hostSystem {
			host = filepath.Join(spec.Root, p)
		}
		if fi, err := os.Stat(host); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed in %s on this machine: %w", spec.Program, search, exec.ErrNotFound)
}

// hostPath maps a path inside the sandbox to the host, for running
// without one: under a Bind its source, under one of Root's top-level
// entries the entry in Root, else the host's own.
func (s *Sandbox) hostPath(spec Spec, p string) string {
	for _, b := range spec.Binds {
		if p == b.Dest || strings.HasPrefix(p, strings.TrimSuffix(b.Dest, "/")+"/") {
			return filepath.Join(b.Src, strings.TrimPrefix(p, b.Dest))
		}
	}
	if spec.Root != "" {
		first := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 2)[0]
		if first != "" {
			if _, err := os.Lstat(filepath.Join(spec.Root, first)); err == nil {
				return filepath.Join(spec.Root, p)
			}
		}
	}
	return p
}

// setprivDir is where an image with a /usr of its own sees the host's
// setpriv and what it needs to run.
const setprivDir = "/.ferry-setpriv"

// sharedDeps returns the dynamic loader and the shared libraries (soname
// -> host path) of the host program prog, as ldd lists them; none for a
// static program.
func sharedDeps(ctx context.Context, prog string) (loader string, libs map[string]string, err error) {
	ldd, err := lookSystem("ldd")
	if err != nil {
		return "", nil, fmt.Errorf("ldd (libc-bin) is not installed: the sandbox needs it to find what setpriv needs; install libc-bin")
	}
	out, err := exec.CommandContext(ctx, ldd, prog).Output()
	if err != nil {
		// why: ldd says "not a dynamic executable" and fails for a
		// static program, which needs nothing.
		if strings.Contains(string(out), "not a dynamic") {
			return "", nil, nil
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(string(ee.Stderr), "not a dynamic") {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("listing the libraries of %s with ldd: %w", prog, err)
	}
	libs = map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && filepath.IsAbs(f[2]):
			libs[f[0]] = f[2]
		case len(f) >= 1 && filepath.IsAbs(f[0]):
			loader = f[0]
		}
	}
	if loader == "" {
		return "", nil, fmt.Errorf("ldd names no dynamic loader for %s; the sandbox cannot run it inside images with their own /usr", prog)
	}
	return loader, libs, nil
}

// lookSystem finds a program on SystemPath of the host.
func lookSystem(name string) (string, error) {
	for _, dir := range filepath.SplitList(SystemPath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
