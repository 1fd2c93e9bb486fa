package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a ferry server's API, as the CLI does.
type Client struct {
	// Server is http://HOST:PORT of ferry serve's listen address.
	Server string
	Token  string
	HTTP   *http.Client
}

// NewClient checks server and token and returns a client.
func NewClient(server, token string) (*Client, error) {
	if server == "" {
		return nil, errors.New("no server: pass --server http://HOST:PORT or set FERRY_SERVER")
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("server %q is not a URL like http://127.0.0.1:8080", server)
	}
	if token == "" {
		return nil, errors.New("no token: pass --token or set FERRY_TOKEN (the tokens are in ferry serve's configuration)")
	}
	return &Client{Server: strings.TrimRight(server, "/"), Token: token, HTTP: &http.Client{}}, nil
}

// do sends a request and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("ferry server at %s: %w", c.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e ErrorView
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Message: e.Error}
		}
		return &StatusError{Code: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("the server's answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// StatusError is an API answer that is not 2xx.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

func (c *Client) Sources(ctx context.Context) ([]SourceView, error) {
	var p ListPage[SourceView]
	err := c.do(ctx, "GET", "/api/v1/sources", nil, &p)
	return p.Items, err
}

func (c *Client) AddSource(ctx context.Context, req SourceRequest) (SourceView, error) {
	var v SourceView
	err := c.do(ctx, "POST", "/api/v1/sources", req, &v)
	return v, err
}

func (c *Client) RemoveSource(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/api/v1/sources/"+url.PathEscape(name), nil, nil)
}

func (c *Client) SyncSource(ctx context.Context, name string) (SourceView, error) {
	var v SourceView
	err := c.do(ctx, "POST", "/api/v1/sources/"+url.PathEscape(name)+"/sync", nil, &v)
	return v, err
}

// Runs lists runs newest first; source "" lists all. before pages on.
func (c *Client) Runs(ctx context.Context, source string, limit int, before int64) (ListPage[RunView], error) {
	var p ListPage[RunView]
	err := c.do(ctx, "GET", "/api/v1/runs"+query(map[string]string{"source": source}, limit, before), nil, &p)
	return p, err
}

func (c *Client) Run(ctx context.Context, id int64) (RunView, error) {
	var v RunView
	err := c.do(ctx, "GET", "/api/v1/runs/"+strconv.FormatInt(id, 10), nil, &v)
	return v, err
}

func (c *Client) Releases(ctx context.Context, source string, limit int, before int64) (ListPage[ReleaseView], error) {
	var p ListPage[ReleaseView]
	err := c.do(ctx, "GET", "/api/v1/releases"+query(map[string]string{"source": source}, limit, before), nil, &p)
	return p, err
}

func (c *Client) Release(ctx context.Context, id string) (ReleaseView, error) {
	var v ReleaseView
	err := c.do(ctx, "GET", "/api/v1/releases/"+url.PathEscape(id), nil, &v)
	return v, err
}

func (c *Client) Environments(ctx context.Context) ([]EnvironmentView, error) {
	var p ListPage[EnvironmentView]
	err := c.do(ctx, "GET", "/api/v1/environments", nil, &p)
	return p.Items, err
}

// Previews lists the pull requests' previews (404 when the server has
// none set up).
func (c *Client) Previews(ctx context.Context) ([]PreviewInfo, error) {
	var p ListPage[PreviewInfo]
	err := c.do(ctx, "GET", "/api/v1/previews", nil, &p)
	return p.Items, err
}

func query(kv map[string]string, limit int, before int64) string {
	q := url.Values{}
	for k, v := range kv {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Logs returns a run's log lines after seq after.
func (c *Client) Logs(ctx context.Context, id, after int64) ([]LogLineView, error) {
	var p ListPage[LogLineView]
	err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/runs/%d/logs?after=%d", id, after), nil, &p)
	return p.Items, err
}

// FollowLogs calls line for every log line of run id from the start, as
// they come, until the run is over; it returns the run as it ended. A
// dropped stream is picked up again where it stopped.
func (c *Client) FollowLogs(ctx context.Context, id int64, line func(LogLineView)) (RunView, error) {
	var after int64
	for attempt := 0; ; attempt++ {
		run, done, err := c.follow(ctx, id, &after, line)
		if done {
			return run, nil
		}
		var se *StatusError
		if ctx.Err() != nil || errors.As(err, &se) || attempt >= 5 {
			if err == nil {
				err = errors.New("the log stream ended before the run did")
			}
			return RunView{}, err
		}
		select {
		case <-ctx.Done():
			return RunView{}, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
}

func (c *Client) follow(ctx context.Context, id int64, after *int64, line func(LogLineView)) (RunView, bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/runs/%d/logs?follow=true&after=%d", c.Server, id, *after), nil)
	if err != nil {
		return RunView{}, false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return RunView{}, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e ErrorView
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		json.Unmarshal(data, &e)
		return RunView{}, false, &StatusError{Code: resp.StatusCode, Message: cmp.Or(e.Error, strings.TrimSpace(string(data)))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event, data string
	for sc.Scan() {
		text := sc.Text()
		switch {
		case text == "":
			switch event {
			case "line":
				var l LogLineView
				if err := json.Unmarshal([]byte(data), &l); err != nil {
					return RunView{}, false, fmt.Errorf("a log event: %w", err)
				}
				*after = l.Seq
				line(l)
			case "end":
				var run RunView
				if err := json.Unmarshal([]byte(data), &run); err != nil {
					return RunView{}, false, fmt.Errorf("the end event: %w", err)
				}
				return run, true, nil
			}
			event, data = "", ""
		case strings.HasPrefix(text, "event: "):
			event = strings.TrimPrefix(text, "event: ")
		case strings.HasPrefix(text, "data: "):
			data += strings.TrimPrefix(text, "data: ")
		}
	}
	return RunView{}, false, sc.Err()
}

// Promote asks for release in env.
func (c *Client) Promote(ctx context.Context, release, env string) (PromotionView, error) {
	var v PromotionView
	err := c.do(ctx, "POST", "/api/v1/promotions", PromoteRequest{Release: release, Environment: env}, &v)
	return v, err
}

// Approve says yes to promotion id; Reject says no, with a comment.
func (c *Client) Approve(ctx context.Context, id int64, comment string) (PromotionView, error) {
	var v PromotionView
	err := c.do(ctx, "POST", fmt.Sprintf("/api/v1/promotions/%d/approve", id), CommentRequest{Comment: comment}, &v)
	return v, err
}

func (c *Client) Reject(ctx context.Context, id int64, comment string) (PromotionView, error) {
	var v PromotionView
	err := c.do(ctx, "POST", fmt.Sprintf("/api/v1/promotions/%d/reject", id), CommentRequest{Comment: comment}, &v)
	return v, err
}

func (c *Client) Promotion(ctx context.Context, id int64) (PromotionView, error) {
	var v PromotionView
	err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/promotions/%d", id), nil, &v)
	return v, err
}

func (c *Client) Promotions(ctx context.Context, env string, limit int, before int64) (ListPage[PromotionView], error) {
	var p ListPage[PromotionView]
	err := c.do(ctx, "GET", "/api/v1/promotions"+query(map[string]string{"env": env}, limit, before), nil, &p)
	return p, err
}

// OpenPromotions returns every promotion in env (all environments: "")
// in status, one a promotion waits in (pending, approved, deploying,
// verifying), oldest first.
func (c *Client) OpenPromotions(ctx context.Context, env, status string) ([]PromotionView, error) {
	var p ListPage[PromotionView]
	err := c.do(ctx, "GET", "/api/v1/promotions"+query(map[string]string{"env": env, "status": status}, 0, 0), nil, &p)
	return p.Items, err
}

// Rollback puts env back; see RollbackRequest.
func (c *Client) Rollback(ctx context.Context, env string, req RollbackRequest) (DeploymentView, error) {
	var v DeploymentView
	err := c.do(ctx, "POST", "/api/v1/environments/"+url.PathEscape(env)+"/rollback", req, &v)
	return v, err
}

func (c *Client) Resume(ctx context.Context, env string) (EnvironmentView, error) {
	var v EnvironmentView
	err := c.do(ctx, "POST", "/api/v1/environments/"+url.PathEscape(env)+"/resume", nil, &v)
	return v, err
}

func (c *Client) Freeze(ctx context.Context, env, reason string) (EnvironmentView, error) {
	var v EnvironmentView
	err := c.do(ctx, "POST", "/api/v1/environments/"+url.PathEscape(env)+"/freeze", FreezeRequest{Reason: reason}, &v)
	return v, err
}

func (c *Client) Unfreeze(ctx context.Context, env string) (EnvironmentView, error) {
	var v EnvironmentView
	err := c.do(ctx, "POST", "/api/v1/environments/"+url.PathEscape(env)+"/unfreeze", nil, &v)
	return v, err
}

// History is env's deployments, newest first.
func (c *Client) History(ctx context.Context, env string, limit int, before int64) (ListPage[DeploymentView], error) {
	var p ListPage[DeploymentView]
	err := c.do(ctx, "GET", "/api/v1/environments/"+url.PathEscape(env)+"/history"+query(nil, limit, before), nil, &p)
	return p, err
}

// Events is the audit log, newest first; object "" for all.
func (c *Client) Events(ctx context.Context, object string, limit int, before int64) (ListPage[EventView], error) {
	var p ListPage[EventView]
	err := c.do(ctx, "GET", "/api/v1/events"+query(map[string]string{"object": object}, limit, before), nil, &p)
	return p, err
}
