package procfs

import (
	"fmt"
	"strings"
	"testing"
)

// statLine is a /proc/PID/stat line with comm and the nice field (19) set,
// and 52 fields in all.
func statLine(comm, nice string) string {
	f := make([]string, 0, 50)
	f = append(f, "S")
	for n := 4; n <= 52; n++ {
		switch n {
		case 19:
			f = append(f, nice)
		case 20:
			f = append(f, "3")
		default:
			f = append(f, fmt.Sprint(n))
		}
	}
	return "42 (" + comm + ") " + strings.Join(f, " ") + "\n"
}

func TestParseStatNice(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       int
		err        bool
	}{
		{"nice 0", statLine("mixed", "0"), 0, false},
		{"nice 10", statLine("mixed", "10"), 10, false},
		{"nice -20, comm with ) and spaces", statLine("a b) c", "-20"), -20, false},
		{"out of range", statLine("x", "40"), 0, true},
		{"not a number", statLine("x", "n"), 0, true},
		{"short", "42 (x) S 1 2", 0, true},
		{"no comm", "42 x S", 0, true},
	} {
		st, err := ParseStat([]byte(tc.line))
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && (st.Nice != tc.want || st.NumThreads != 3) {
			t.Errorf("%s: nice %d, threads %d; want %d, 3", tc.name, st.Nice, st.NumThreads, tc.want)
		}
	}
}
