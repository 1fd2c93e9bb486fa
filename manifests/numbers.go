package manifests

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// maxExponent bounds the exponent of a number in free-form data, so that
// 1e999999999 is refused instead of written out in full.
const maxExponent = 1000

// plainDigits is how many digits an integer may have before it is written
// in exponent form; beyond this, 1e40 reads better than forty zeros.
const plainDigits = 40

var decimalRE = regexp.MustCompile(`^([0-9]*)(?:\.([0-9]*))?(?:[eE]([-+]?[0-9]+))?$`)

// canonicalNumber turns a YAML number into one canonical JSON number with
// the same exact value: no float rounding (0.1000000000000000000001 stays
// itself, a 30-digit integer keeps its digits), and one spelling per value
// (1e3, 1000, 1000.0 and 0x3e8 are all 1000; -0 is 0). Free-form data is
// part of a release's identity, so the same value must give the same bytes
// and different values different bytes.
func canonicalNumber(text string) (json.Number, error) {
	s := strings.ReplaceAll(text, "_", "")
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if len(s) > 2 && s[0] == '0' && strings.ContainsRune("xXoObB", rune(s[1])) {
		// A hex, octal or binary literal: its decimal digits go through
		// the same normalisation as any other integer.
		var i big.Int
		if _, ok := i.SetString(s, 0); !ok {
			return "", fmt.Errorf("%q is not a number", text)
		}
		s = i.String()
	} else if leadingZero(s) {
		return "", fmt.Errorf("%s has a leading zero, which YAML may read as octal; write the number without it, or quote it", text)
	}
	m := decimalRE.FindStringSubmatch(s)
	if m == nil || m[1]+m[2] == "" {
		return "", fmt.Errorf("%s has no JSON form; quote it to send a string", text)
	}
	exp := 0
	if m[3] != "" {
		e, err := strconv.Atoi(m[3])
		if err != nil || e > maxExponent || e < -maxExponent {
			return "", fmt.Errorf("%s is out of range: the exponent may be at most %d", text, maxExponent)
		}
		exp = e
	}
	digits := strings.TrimLeft(m[1]+m[2], "0")
	exp -= len(m[2])
	if digits == "" {
		return "0", nil // -0 too
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	return decimal(neg, trimmed, exp), nil
}

// decimal writes ±digits × 10^exp (digits with no leading or trailing
// zeros) in plain form where that is short, and in exponent form (1.5e+50)
// where it is not.
func decimal(neg bool, digits string, exp int) json.Number {
	sign := ""
	if neg {
		sign = "-"
	}
	n := len(digits)
	point := n + exp // digits before the decimal point
	switch {
	case exp >= 0 && point <= plainDigits:
		return json.Number(sign + digits + strings.Repeat("0", exp))
	case exp < 0 && point > 0:
		return json.Number(sign + digits[:point] + "." + digits[point:])
	case exp < 0 && point > -6:
		return json.Number(sign + "0." + strings.Repeat("0", -point) + digits)
	}
	mant := digits[:1]
	if n > 1 {
		mant += "." + digits[1:]
	}
	e := point - 1
	esign := "+"
	if e < 0 {
		esign, e = "-", -e
	}
	return json.Number(fmt.Sprintf("%s%se%s%d", sign, mant, esign, e))
}
