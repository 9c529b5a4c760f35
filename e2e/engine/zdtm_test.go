package engine_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/e2e/workload"
	"github.com/migrated/migrated/restore"
)

// zdtmRefused lists the zdtm programs the engine refuses before freezing
// today, with the reason; each must still be refused cleanly (and pass
// unmoved afterwards), never half-moved.
var zdtmRefused = map[string]string{}

// TestZDTM checkpoints and restores every zdtm program (one feature each)
// with the same PID; each one then checks its own feature and reports PASS
// or FAIL. The count is logged for the README.
func TestZDTM(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	names := set.ZDTM()
	if len(names) == 0 {
		t.Fatal("no zdtm programs")
	}
	var mu sync.Mutex
	passed, refused := 0, 0
	for _, name := range names {
		t.Run(strings.TrimPrefix(name, "zdtm/"), func(t *testing.T) {
			p := set.Start(t, name, workload.Opts{})
			pid, err := p.WaitReady()
			if err != nil {
				t.Fatal(err)
			}
			var img bytes.Buffer
			_, _, err = checkpoint.Dump(pid, &img, checkpoint.DumpOptions{})
			if why, ok := zdtmRefused[name]; ok {
				if !errors.Is(err, checkpoint.ErrUnsupported) {
					t.Fatalf("want a refusal (%s), got %v", why, err)
				}
				res, ferr := p.Finish(pid)
				if ferr != nil || !res.Passed() {
					t.Fatalf("after the refusal: %v %s", ferr, res.Status)
				}
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			if err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
			if err := p.Reap(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			proc, _, err := restore.FromImage(&img, restore.Options{})
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if err := proc.Resume(); err != nil {
				t.Fatal(err)
			}
			res, err := p.Finish(pid)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Passed() {
				t.Fatalf("%s after the restore: %s\n%s", name, res.Status, p.Output())
			}
			mu.Lock()
			passed++
			mu.Unlock()
		})
	}
	t.Logf("zdtm: %d of %d programs moved and passed their own checks; %d refused before freezing (%v)",
		passed, len(names), refused, zdtmRefused)
}
