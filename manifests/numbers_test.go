package manifests

import "testing"

func TestCanonicalNumber(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "-0.0": "0", "+0": "0", "0.0": "0",
		"1000": "1000", "1e3": "1000", "1000.0": "1000", "0x3e8": "1000", "0o1750": "1000", "1_000": "1000",
		"1e20": "100000000000000000000", "100000000000000000000": "100000000000000000000",
		"10000000000000000000000": "10000000000000000000000",
		"1e50":                    "1e+50", "12345e46": "1.2345e+50",
		"0.1": "0.1", ".5": "0.5", "-2.50": "-2.5", "0.1000000000000000000001": "0.1000000000000000000001",
		"1.5e-3": "0.0015", "1e-7": "1e-7", "-123.456e-10": "-1.23456e-8",
		"-0x10": "-16", "0b101": "5",
	} {
		got, err := canonicalNumber(in)
		if err != nil || string(got) != want {
			t.Errorf("canonicalNumber(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"08", "010", "-012.5", "1e1001", ".inf", "-.Inf", ".nan", "0x", "1e"} {
		if got, err := canonicalNumber(in); err == nil {
			t.Errorf("canonicalNumber(%q) = %q; want an error", in, got)
		}
	}
}
