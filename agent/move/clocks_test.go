package move

import (
	"testing"
	"time"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/restore"
)

func TestClockPlan(t *testing.T) {
	now := readClocks()
	rtt := 5 * time.Millisecond
	// A task from a host whose clocks are an hour ahead of ours.
	ahead := &image.Clocks{MonotonicNs: now.mono + int64(time.Hour), BoottimeNs: now.boot + int64(time.Hour)}
	p, refuse := planClocks(ahead, rtt, true)
	if refuse || !p.need || p.mono < int64(time.Hour) || p.mono > int64(time.Hour+time.Second) {
		t.Fatalf("ahead by 1h: need %v, offset %v", p.need, time.Duration(p.mono))
	}
	c := p.taskNow()
	if c == nil || c.MonotonicNs < ahead.MonotonicNs || c.BoottimeNs < ahead.BoottimeNs {
		t.Fatalf("carried on clocks %v went back from %v", c, ahead)
	}
	// Without a namespace the task's clocks (an hour ahead, at the
	// freeze) would go back: the cutover refuses.
	if _, err := p.check(ahead, &restore.Process{}); err == nil {
		t.Fatal("check accepted clocks an hour ahead with no time namespace")
	}
	// A few milliseconds ahead: waited out.
	soon := &image.Clocks{MonotonicNs: readClocks().mono + int64(20*time.Millisecond), BoottimeNs: now.boot}
	if wait, err := (clockPlan{}).check(soon, &restore.Process{}); err != nil || wait <= 0 || wait > 20*time.Millisecond {
		t.Fatalf("20 ms ahead: wait %v, %v", wait, err)
	}
	// The same host, or one that booted earlier: no namespace, and the
	// clocks of a freeze a moment ago are fine.
	behind := &image.Clocks{MonotonicNs: now.mono - int64(time.Millisecond), BoottimeNs: now.boot - int64(time.Millisecond)}
	if p, refuse := planClocks(behind, rtt, true); refuse || p.need || p.taskNow() != nil {
		t.Fatalf("same clocks: need %v", p.need)
	}
	if wait, err := (clockPlan{}).check(behind, &restore.Process{}); err != nil || wait != 0 {
		t.Fatalf("check: wait %v, %v", wait, err)
	}
	if p, refuse := planClocks(nil, rtt, true); refuse || p.need {
		t.Fatal("no clocks in the manifest: need")
	}
	// A kernel without time namespaces: refused when an hour ahead; a
	// few milliseconds ahead go on without one (the downtime covers
	// them; the cutover checks).
	if p, refuse := planClocks(ahead, rtt, false); !refuse || p.need {
		t.Fatalf("an hour ahead, no time namespaces: refuse %v, need %v", refuse, p.need)
	}
	slightly := &image.Clocks{MonotonicNs: readClocks().mono + int64(5*time.Millisecond), BoottimeNs: now.boot}
	if p, refuse := planClocks(slightly, rtt, false); refuse || p.need {
		t.Fatalf("5 ms ahead, no time namespaces: refuse %v, need %v", refuse, p.need)
	}
}
