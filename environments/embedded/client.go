package embedded

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Invoke calls a function by name through the gateway at gatewayURL, with
// data as the body of a plain JSON request (the gateway makes it a
// CloudEvent), and returns the status and the answer.
func Invoke(ctx context.Context, gatewayURL, env, function string, data []byte) (int, []byte, error) {
	return Call(ctx, gatewayURL, env, http.MethodPost, InvokePath(function), data)
}

// callClient is Call's: a function's redirect is its answer, printed as
// such, not a URL for ferry to fetch with the data.
var callClient = &http.Client{CheckRedirect: noRedirects}

// Call sends method on path of environment env through the gateway at
// gatewayURL, with data as a JSON body (none when empty), and returns the
// status and the answer.
func Call(ctx context.Context, gatewayURL, env, method, path string, data []byte) (int, []byte, error) {
	url := strings.TrimRight(gatewayURL, "/") + "/" + env + "/" + strings.TrimLeft(path, "/")
	var body io.Reader
	if len(data) > 0 {
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, err
	}
	if len(data) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := callClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("calling %s: %w; is `ferry run` (or ferry serve) running with its gateway there?", url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, answer, err
}

// LogFile is where the embedded target writes a function's log under a
// data folder.
func LogFile(dataDir, env, function string) string {
	return logPath(filepath.Join(dataDir, "logs"), env, function)
}

// logPoll is how often a followed log is looked at for new lines.
const logPoll = 200 * time.Millisecond

// CopyLog writes the log file to w and, with follow, keeps writing what is
// appended until ctx ends.
func CopyLog(ctx context.Context, file string, w io.Writer, follow bool) error {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return fmt.Errorf("no log at %s: the function has not run in that environment with that data folder", file)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logPoll):
		}
	}
}
