package github

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v57/github"
)

// DefaultAPIURL is github.com's API.
const DefaultAPIURL = "https://api.github.com/"

const (
	// refreshEarly renews an installation token this long before it
	// expires, so a request never leaves with a token about to die.
	refreshEarly = 5 * time.Minute
	// jwtLife is the App JWT's life: GitHub takes at most 10 minutes, and
	// iat is set a minute back for clocks that drift.
	jwtLife = 9 * time.Minute
)

// Config is how ferry reaches GitHub: a token, or an App.
type Config struct {
	// APIURL is the REST API's base (default DefaultAPIURL); GitHub
	// Enterprise's is https://HOST/api/v3/.
	APIURL string
	// Token is a personal access (or fine-grained) token.
	Token string
	// App, when set instead of Token, is a GitHub App installation.
	App *App
	// HTTPClient makes the requests (default: one with a 30 s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// App is a GitHub App's installation: its id, the installation's id and
// the App's private key (PEM, as GitHub hands it out).
type App struct {
	ID             int64
	InstallationID int64
	PrivateKey     []byte
}

// Client is go-github with ferry's credentials. It is safe for
// concurrent use.
type Client struct {
	gh  *gh.Client
	web string // the web host repositories are on: github.com, or the Enterprise host
	// whoami asks GitHub who ferry writes as; Self keeps the answer.
	whoami func(ctx context.Context) (string, error)
	selfMu sync.Mutex
	self   string
}

// Self is the login ferry's comments are by: the token's user (GET
// /user), or the App's bot "SLUG[bot]" (GET /app). Asked once.
func (c *Client) Self(ctx context.Context) (string, error) {
	c.selfMu.Lock()
	defer c.selfMu.Unlock()
	if c.self != "" {
		return c.self, nil
	}
	login, err := c.whoami(ctx)
	if err != nil {
		return "", err
	}
	if login == "" {
		return "", errors.New("github: GitHub named no login for ferry's credentials")
	}
	c.self = login
	return login, nil
}

// New makes a client. It does not call GitHub: a wrong token shows on the
// first call.
func New(cfg Config) (*Client, error) {
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("github api URL %q is not an http(s) URL; give https://api.github.com/ or https://HOST/api/v3/ for Enterprise", cfg.APIURL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var src tokenSource
	var whoami func(ctx context.Context) (string, error)
	switch {
	case cfg.Token != "" && cfg.App != nil:
		return nil, errors.New("github: give a token or an app, not both")
	case cfg.Token != "":
		src = staticToken(cfg.Token)
	case cfg.App != nil:
		key, err := parseKey(cfg.App.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("github app %d: private key: %w", cfg.App.ID, err)
		}
		apps := gh.NewClient(&http.Client{Timeout: hc.Timeout, Transport: jwtTransport{next: transport(hc)}})
		apps.BaseURL = base
		apps.UserAgent = "ferry"
		in := &installation{app: *cfg.App, key: key, now: cfg.Now, apps: apps}
		src = in
		whoami = func(ctx context.Context) (string, error) {
			jwt, err := appJWT(in.app.ID, in.key, in.now())
			if err != nil {
				return "", err
			}
			app, _, err := apps.Apps.Get(context.WithValue(ctx, jwtKey{}, jwt), "")
			if err != nil {
				return "", fmt.Errorf("github app %d: %w", in.app.ID, err)
			}
			return app.GetSlug() + "[bot]", nil
		}
	default:
		return nil, errors.New("github: give a token or an app")
	}
	c := gh.NewClient(&http.Client{Timeout: hc.Timeout, Transport: &authTransport{src: src, next: transport(hc)}})
	c.BaseURL = base
	c.UserAgent = "ferry"
	web := base.Host
	if web == "api.github.com" {
		web = "github.com"
	}
	if whoami == nil {
		whoami = func(ctx context.Context) (string, error) {
			u, _, err := c.Users.Get(ctx, "")
			if err != nil {
				return "", fmt.Errorf("github: the token's user: %w", err)
			}
			return u.GetLogin(), nil
		}
	}
	return &Client{gh: c, web: web, whoami: whoami}, nil
}

// tokenSource gives the token for the next request; forget drops one
// GitHub refused, so the next call fetches another.
type tokenSource interface {
	token(ctx context.Context) (string, error)
	forget(tok string)
}

type staticToken string

func (t staticToken) token(context.Context) (string, error) { return string(t), nil }
func (t staticToken) forget(string)                         {}

// installation keeps an App installation's token, fetched on first use
// and again refreshEarly before it expires. One fetch at a time: the
// lock is held across it so concurrent callers wait for the same token.
type installation struct {
	app  App
	key  *rsa.PrivateKey
	now  func() time.Time
	apps *gh.Client

	mu      sync.Mutex
	current string
	expires time.Time
}

func (in *installation) token(ctx context.Context) (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.current != "" && in.now().Add(refreshEarly).Before(in.expires) {
		return in.current, nil
	}
	jwt, err := appJWT(in.app.ID, in.key, in.now())
	if err != nil {
		return "", err
	}
	ctx = context.WithValue(ctx, jwtKey{}, jwt)
	tok, _, err := in.apps.Apps.CreateInstallationToken(ctx, in.app.InstallationID, nil)
	if err != nil {
		return "", fmt.Errorf("github app %d: installation %d's token: %w", in.app.ID, in.app.InstallationID, err)
	}
	in.current, in.expires = tok.GetToken(), tok.GetExpiresAt().Time
	return in.current, nil
}

func (in *installation) forget(tok string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.current == tok {
		in.current = ""
	}
}

// jwtKey carries the App's JWT to the transport of the token request.
type jwtKey struct{}

// jwtTransport signs the token request with the JWT its context carries.
type jwtTransport struct{ next http.RoundTripper }

func (t jwtTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	jwt, _ := r.Context().Value(jwtKey{}).(string)
	return t.next.RoundTrip(withToken(r, jwt))
}

func transport(hc *http.Client) http.RoundTripper {
	if hc.Transport != nil {
		return hc.Transport
	}
	return http.DefaultTransport
}

// authTransport sets the Authorization header of each request. A 401 to
// a request with an installation token (revoked, or expired early) drops
// the token and tries once more with a fresh one.
type authTransport struct {
	src  tokenSource
	next http.RoundTripper
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := t.src.token(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.next.RoundTrip(withToken(r, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if _, static := t.src.(staticToken); static || (r.Body != nil && r.GetBody == nil) {
		return resp, nil
	}
	t.src.forget(tok)
	fresh, err := t.src.token(r.Context())
	if err != nil || fresh == tok {
		return resp, nil
	}
	again := r.Clone(r.Context())
	if r.GetBody != nil {
		if again.Body, err = r.GetBody(); err != nil {
			return resp, nil
		}
	}
	resp.Body.Close()
	return t.next.RoundTrip(withToken(again, fresh))
}

func withToken(r *http.Request, tok string) *http.Request {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// appJWT is the App's JSON Web Token (RS256), which GitHub trades for an
// installation token. The standard library does it in a few lines.
func appJWT(appID int64, key *rsa.PrivateKey, now time.Time) (string, error) {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(jwtLife).Unix(),
		"iss": strconv.FormatInt(appID, 10),
	})
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("github app %d: signing its JWT: %w", appID, err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// parseKey reads an RSA private key in PEM: PKCS#1, as GitHub hands App
// keys out, or PKCS#8.
func parseKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not PEM; give the .pem file GitHub generated for the App")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an RSA private key: %v", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, GitHub Apps use RSA keys", k)
	}
	return rk, nil
}
