package agent

import (
	"os"
	"testing"
)

// TestBoostForCutover: nested boosts run the agent at nice 0 and the last
// end restores its niceness; an agent at nice 0 is left alone.
func TestBoostForCutover(t *testing.T) {
	orig := ownNice()
	t.Cleanup(func() { _ = Renice(orig) })
	if os.Geteuid() != 0 && orig > 0 {
		t.Skip("lowering niceness needs root (CAP_SYS_NICE)")
	}
	for _, tc := range []struct {
		name          string
		base          int
		during, after int
	}{
		{"niced agent", 10, 0, 10},
		{"agent at nice 0", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Renice(tc.base); err != nil {
				t.Skipf("renice to %d: %v", tc.base, err)
			}
			end1 := BoostForCutover()
			end2 := BoostForCutover()
			if got := ownNice(); got != tc.during {
				t.Fatalf("during the boost: nice %d, want %d", got, tc.during)
			}
			end1()
			end1() // a second call does nothing
			if got := ownNice(); got != tc.during {
				t.Fatalf("one boost still on: nice %d, want %d", got, tc.during)
			}
			end2()
			if got := ownNice(); got != tc.after {
				t.Fatalf("after the boost: nice %d, want %d", got, tc.after)
			}
		})
	}
}
