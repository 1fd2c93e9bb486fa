package build

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// TestListenAddr: with FERRY_LISTEN_ADDR, the Go main and both invokers
// serve on that address instead of 127.0.0.1 (a pod is reached at its
// IP), and refuse a value that is not an IP address. 127.0.0.2 is a
// loopback address distinct from 127.0.0.1 on Linux.
func TestListenAddr(t *testing.T) {
	t.Parallel()
	bin := goCompileT(t, goBuild{Src: os.DirFS(goWriteTree(t, contractGoModule)), Source: "echo", Handler: "Handle"})
	commands := map[string]func() *exec.Cmd{"go": func() *exec.Cmd { return exec.Command(bin) }}
	for _, rt := range []string{v1alpha1.RuntimePython, v1alpha1.RuntimeNodeJS} {
		root := contractLayOut(t, rt)
		entrypoint, err := invoker.Entrypoint(rt)
		if err != nil {
			t.Fatal(err)
		}
		handler := map[string]string{v1alpha1.RuntimePython: "main.handle", v1alpha1.RuntimeNodeJS: "index.handle"}[rt]
		commands[rt] = func() *exec.Cmd {
			cmd := exec.Command(entrypoint[0], filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(entrypoint[1], "/ferry/"))))
			cmd.Env = append(os.Environ(), "FERRY_HANDLER="+handler, "PYTHONDONTWRITEBYTECODE=1")
			return cmd
		}
	}
	for name, command := range commands {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			cmd := command()
			cmd.Env = append(cmd.Env, fmt.Sprintf("PORT=%d", port), "FERRY_LISTEN_ADDR=127.0.0.2")
			out := &contractLog{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			url := fmt.Sprintf("http://127.0.0.2:%d/healthz", port)
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
				resp, err := http.Get(url)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK && string(body) == "ok" {
						break
					}
				}
				select {
				case <-exited:
					t.Fatalf("exited before it answered on 127.0.0.2:\n%s", out)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no answer at %s after a minute: %v\n%s", url, err, out)
				}
			}
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				t.Errorf("with FERRY_LISTEN_ADDR=127.0.0.2 it also accepts on 127.0.0.1")
			}

			bad := command()
			bad.Env = append(bad.Env, fmt.Sprintf("PORT=%d", freePort(t)), "FERRY_LISTEN_ADDR=everywhere")
			msg, err := bad.CombinedOutput()
			if err == nil {
				t.Fatalf("FERRY_LISTEN_ADDR=everywhere: it ran and exited 0:\n%s", msg)
			}
			if want := `FERRY_LISTEN_ADDR "everywhere" is not an IP address`; !strings.Contains(string(msg), want) {
				t.Errorf("FERRY_LISTEN_ADDR=everywhere: output does not say %q:\n%s", want, msg)
			}
		})
	}
}
