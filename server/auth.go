package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Role is what a token may do. Every role may read (viewer); the others
// add what their names say, and admin may do everything.
type Role string

const (
	RoleViewer   Role = "viewer"
	RoleDeployer Role = "deployer" // sync sources, promote, roll back
	RoleApprover Role = "approver" // approve and reject promotions
	RoleAdmin    Role = "admin"    // add and remove sources, and all of the above
)

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleDeployer, RoleApprover, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q is not one of viewer, deployer, approver, admin", s)
}

// Token is one API identity: a name (the actor in the audit log), its
// secret and its roles.
type Token struct {
	Name   string
	Secret string
	Roles  []Role
	// Email matches the identity to commit authors (a self-approval);
	// Groups to approvers named "group:<name>" in a policy.
	Email  string
	Groups []string
}

// Identity is the caller a request was authenticated as.
type Identity struct {
	Name   string
	Email  string
	Groups []string
	Roles  []Role
}

// Has reports whether the identity holds role (admin holds every role;
// every identity is a viewer).
func (id Identity) Has(role Role) bool {
	return role == RoleViewer || slices.Contains(id.Roles, RoleAdmin) || slices.Contains(id.Roles, role)
}

// tokens checks bearer tokens.
type tokens struct {
	list []hashedToken
}

type hashedToken struct {
	sum [sha256.Size]byte
	id  Identity
}

func newTokens(list []Token) (*tokens, error) {
	t := &tokens{}
	seen := map[string]bool{}
	for _, tok := range list {
		if tok.Name == "" || len(tok.Secret) < 16 {
			return nil, fmt.Errorf("token %q: a token needs a name and a secret of at least 16 characters (e.g. `openssl rand -hex 24`)", tok.Name)
		}
		if seen[tok.Secret] {
			return nil, fmt.Errorf("token %q: its secret is also another token's; give each token its own", tok.Name)
		}
		seen[tok.Secret] = true
		t.list = append(t.list, hashedToken{sum: sha256.Sum256([]byte(tok.Secret)), id: Identity{Name: tok.Name, Email: tok.Email, Groups: tok.Groups, Roles: tok.Roles}})
	}
	return t, nil
}

// identify returns the identity of r's bearer token. Every token is
// compared, in constant time, so the time taken says nothing of which
// one nearly matched.
func (t *tokens) identify(r *http.Request) (Identity, bool) {
	if id, ok := r.Context().Value(identityKey{}).(Identity); ok {
		return id, true
	}
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || secret == "" {
		return Identity{}, false
	}
	return t.bySum(sha256.Sum256([]byte(secret)))
}

// authorize identifies r's token and checks that it holds role; when it
// does not, it answers 401 (no valid token) or 403 and returns false.
func (t *tokens) authorize(w http.ResponseWriter, r *http.Request, role Role) (Identity, bool) {
	id, ok := t.identify(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
		writeJSONError(w, http.StatusUnauthorized, "a valid API token is required: pass --token or set FERRY_TOKEN")
		return Identity{}, false
	}
	if !id.Has(role) {
		writeJSONError(w, http.StatusForbidden, fmt.Sprintf("token %s lacks the %s role this needs", id.Name, role))
		return Identity{}, false
	}
	return id, true
}

// identityKey marks a request the dashboard makes in-process for a
// signed-in identity (ui_client.go). why: a context value cannot come
// from the network, so only ferry's own code can speak for someone.
type identityKey struct{}

// withIdentity returns ctx acting as id in the API.
func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// bySum finds the identity of a token by its secret's hash, as a session
// keeps it; ok is false once the token is gone from the configuration.
func (t *tokens) bySum(sum [sha256.Size]byte) (Identity, bool) {
	var found Identity
	match := 0
	for _, h := range t.list {
		if subtle.ConstantTimeCompare(sum[:], h.sum[:]) == 1 {
			found, match = h.id, 1
		}
	}
	return found, match == 1
}

// withRole serves h to tokens holding role only.
func withRole(t *tokens, role Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := t.authorize(w, r, role); ok {
			h.ServeHTTP(w, r)
		}
	})
}
