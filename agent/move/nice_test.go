package move

import (
	"strings"
	"testing"
)

func TestParseStatNice(t *testing.T) {
	rest := " S 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 %s 1 0 100 1000 200"
	for _, tc := range []struct {
		name, line string
		want       int
		err        bool
	}{
		{"nice 0", "42 (mixed)" + strings.Replace(rest, "%s", "0", 1), 0, false},
		{"nice 10", "42 (mixed)" + strings.Replace(rest, "%s", "10", 1), 10, false},
		{"nice -5", "42 (a b) c)" + strings.Replace(rest, "%s", "-5", 1), -5, false},
		{"out of range", "42 (x)" + strings.Replace(rest, "%s", "40", 1), 0, true},
		{"short", "42 (x) S 1 2", 0, true},
		{"no comm", "42 x S", 0, true},
	} {
		got, err := parseStatNice(tc.line)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseStatNice(f *testing.F) {
	f.Add("42 (mixed) S 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 100 1000 200")
	f.Add("1 (a)")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseStatNice(s); err == nil && (n < -20 || n > 19) {
			t.Fatalf("nice %d accepted", n)
		}
	})
}
