package githubtest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// checkJWT checks an App's JWT as GitHub documents it: RS256, iss the
// App's id, iat in the past (GitHub advises 60 s of slack for clocks),
// exp in the future and at most 10 minutes after iat.
func checkJWT(token string, app *App, now time.Time) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts, want header.claims.signature", len(parts))
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := decodePart(parts[0], &header); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("alg %q, GitHub wants RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(app.Key, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature does not verify with the App's key: %v", err)
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat *int64          `json:"iat"`
		Exp *int64          `json:"exp"`
	}
	if err := decodePart(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	// GitHub takes iss as the App's id, a number or its decimal string.
	iss := strings.Trim(string(claims.Iss), `"`)
	if iss != strconv.FormatInt(app.ID, 10) {
		return fmt.Errorf("iss %s, want the App's id %d", claims.Iss, app.ID)
	}
	if claims.Iat == nil || claims.Exp == nil {
		return fmt.Errorf("iat and exp are required")
	}
	iat, exp := time.Unix(*claims.Iat, 0), time.Unix(*claims.Exp, 0)
	switch {
	case iat.After(now.Add(time.Minute)):
		return fmt.Errorf("iat %s is in the future", iat.UTC())
	case !exp.After(now):
		return fmt.Errorf("exp %s has passed", exp.UTC())
	case exp.Sub(iat) > 11*time.Minute:
		return fmt.Errorf("exp is %s after iat; GitHub takes at most 10 minutes", exp.Sub(iat))
	}
	return nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
