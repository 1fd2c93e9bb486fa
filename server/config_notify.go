package server

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/ferrycd/ferry/server/github"
	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
)

// NotificationConfig is a receiver of ferry's outcomes outside GitHub: a
// generic webhook or a Slack-compatible incoming webhook.
type NotificationConfig struct {
	// Name files the receiver's queued notices in the store (default:
	// its type, then TYPE-2, TYPE-3 for the next of the same type). Give
	// one to keep what is queued when the list is reordered.
	Name string `yaml:"name"`
	// Type is webhook or slack.
	Type string `yaml:"type"`
	// URL is where notices are POSTed. Slack's is a secret: like Secret
	// it may be "env:VAR", "$VAR" or "file:PATH".
	URL string `yaml:"url"`
	// Secret signs a webhook's bodies (X-Ferry-Signature-256).
	Secret string `yaml:"secret"`
	// Events are the kinds heard (default: notify.DefaultKinds).
	Events []string `yaml:"events"`
	// Environments are names or globs (pr-*) heard (default: all).
	Environments []string `yaml:"environments"`
}

// The notification types.
const (
	notifyWebhook = "webhook"
	notifySlack   = "slack"
)

// checkNotifications fills the names and the public URL, and checks each
// receiver; the secrets are read now to be checked, and again at start.
func (c *Config) checkNotifications() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("publicURL: %q is not an http(s) URL; give ferry's address as people reach it, such as https://ferry.example.com", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	names, perType := map[string]bool{}, map[string]int{}
	for i := range c.Notifications {
		n := &c.Notifications[i]
		if n.Type != notifyWebhook && n.Type != notifySlack {
			bad("notifications[%d].type: %q: give webhook (JSON, signed) or slack (an incoming webhook)", i, n.Type)
			continue
		}
		perType[n.Type]++
		if n.Name == "" {
			n.Name = n.Type
			if k := perType[n.Type]; k > 1 {
				n.Name = fmt.Sprintf("%s-%d", n.Type, k)
			}
		}
		if !validName(n.Name) {
			bad("notifications[%d].name: %q: use lower-case letters, digits and '-', starting with a letter", i, n.Name)
		}
		if names[n.Name] {
			bad("notifications[%d].name: a second notification named %s; give each its own name", i, n.Name)
		}
		names[n.Name] = true
		if n.Type == notifySlack && n.Secret != "" {
			bad("notifications[%d].secret: a Slack webhook is not signed; its url is the secret", i)
		}
		// why: the URL is not quoted in a message: Slack's is a secret.
		switch u, err := c.secretValue(n.URL); {
		case n.URL == "":
			bad("notifications[%d].url: required: where ferry POSTs the notices", i)
		case err != nil:
			bad("notifications[%d].url: %v", i, err)
		default:
			if pu, perr := url.Parse(u); perr != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				bad("notifications[%d].url: not an http(s) URL (its value is not repeated here, as it may be a secret)", i)
			}
		}
		if _, err := c.secretValue(n.Secret); err != nil {
			bad("notifications[%d].secret: %v", i, err)
		}
		if err := n.filter().Check(); err != nil {
			bad("notifications[%d].%v", i, err)
		}
	}
	return errs
}

func (n NotificationConfig) filter() notify.Filter {
	f := notify.Filter{Environments: n.Environments}
	for _, e := range n.Events {
		f.Events = append(f.Events, notify.Kind(e))
	}
	return f
}

// notifySinks are the configuration's notification receivers. ferry
// serve appends the sinks of other parts (GitHub) to them.
func (c *Config) notifySinks() ([]notify.Sink, error) {
	var sinks []notify.Sink
	for i, n := range c.Notifications {
		u, err := c.secretValue(n.URL)
		if err != nil {
			return nil, fmt.Errorf("notifications[%d].url: %w", i, err)
		}
		secret, err := c.secretValue(n.Secret)
		if err != nil {
			return nil, fmt.Errorf("notifications[%d].secret: %w", i, err)
		}
		var s notify.Sink
		switch n.Type {
		case notifyWebhook:
			s, err = notify.NewWebhook(notify.WebhookConfig{Name: n.Name, URL: u, Secret: secret, Filter: n.filter()})
		case notifySlack:
			s, err = notify.NewSlack(notify.SlackConfig{Name: n.Name, URL: u, Filter: n.filter()})
		}
		if err != nil {
			return nil, fmt.Errorf("notifications[%d]: %w", i, err)
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}

// newNotices makes the notifier of the configured receivers, and the
// notices that feed it from the engine's events. apiAddr is where the API
// listens, for the default public URL; gh is Serve's GitHub client, nil
// without a github block.
func newNotices(cfg *Config, st *store.SQLite, gh *github.Client, apiAddr, gatewayURL string, logf func(string, ...any)) (*notify.Notifier, *notices, error) {
	sinks, err := cfg.notifySinks()
	if err != nil {
		return nil, nil, err
	}
	ghs, err := cfg.GitHubSink(gh, st)
	if err != nil {
		return nil, nil, fmt.Errorf("github: %w", err)
	}
	if ghs != nil {
		sinks = append(sinks, ghs)
	}
	n, err := notify.New(notify.Config{Outbox: st, Sinks: sinks, Log: logf})
	if err != nil {
		return nil, nil, err
	}
	public := cfg.PublicURL
	if public == "http://"+cfg.Listen {
		// why: the default, with the port the API got (listen: ...:0).
		public = "http://" + apiAddr
	}
	tell := &notices{store: st, publicURL: public, gatewayURL: gatewayURL}
	if len(sinks) > 0 {
		tell.publish = n.Publish
	}
	for _, nc := range cfg.Notifications {
		logf("notifications: %s (%s) to %s", nc.Name, nc.Type, notifyHost(cfg, nc.URL))
	}
	return n, tell, nil
}

// notifyHost is the host of a receiver's URL, all a log may say of it.
func notifyHost(cfg *Config, ref string) string {
	u, err := cfg.secretValue(ref)
	if err != nil {
		return "?"
	}
	pu, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return pu.Host
}
