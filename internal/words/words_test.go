package words

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Count(0, "check"), "0 checks"},
		{Count(1, "check"), "1 check"},
		{Count(2, "check"), "2 checks"},
		{Count(1, "entry", "entries"), "1 entry"},
		{Count(3, "entry", "entries"), "3 entries"},
		{Noun(1, "approval"), "approval"},
		{List(nil, "or"), ""},
		{List([]string{"ann"}, "or"), "ann"},
		{List([]string{"ann", "bob"}, "or"), "ann or bob"},
		{List([]string{"ann", "bob", "cy"}, "and"), "ann, bob and cy"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
