package words

import (
	"strconv"
	"strings"
)

// Count writes n and the noun, plural unless n is 1. The plural is the
// singular with "s" added, or plural[0] when given (Count(2, "entry",
// "entries")).
func Count(n int, singular string, plural ...string) string {
	return strconv.Itoa(n) + " " + Noun(n, singular, plural...)
}

// Noun is the noun alone, as Count picks it.
func Noun(n int, singular string, plural ...string) string {
	if n == 1 {
		return singular
	}
	if len(plural) > 0 {
		return plural[0]
	}
	return singular + "s"
}

// List joins names as people write them: "a", "a or b", "a, b or c".
func List(names []string, conj string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + conj + " " + names[len(names)-1]
}
