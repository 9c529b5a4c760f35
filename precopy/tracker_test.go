package precopy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestProbeAvoidsUFFDUnderSeccomp: a task under a seccomp filter gets no
// injected userfaultfd (a filter may kill it for that); Probe falls back.
func TestProbeAvoidsUFFDUnderSeccomp(t *testing.T) {
	needRoot(t)
	d := startDirtier(t, 16, "all seccomp")
	tr, why, err := Probe(d.PID, d.PageSize)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	defer tr.Close()
	if tr.Kind() == KindUFFD || len(why) == 0 || !errors.Is(why[0], ErrSeccomp) {
		t.Fatalf("Probe chose %s (why not the others: %v)", tr.Kind(), why)
	}
	if ans := d.do("sum"); ans == "" {
		t.Fatal("task does not answer")
	}
}

func uwFlagged(t *testing.T, pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmFlags:") && slices.Contains(strings.Fields(l), "uw") {
			out = append(out, l)
		}
	}
	return out
}

// TestTrackerFindsWrittenPages runs each tracker against a real task that
// writes known pages (from user mode, from the kernel, after dropping
// them) through the engine's own collect-plan-send steps, and checks that
// exactly those pages are reported; then that Close leaves the task as it
// was (same fds, no uffd-wp registration) and working.
func TestTrackerFindsWrittenPages(t *testing.T) {
	needRoot(t)
	for _, kind := range []Kind{KindUFFD, KindSoftDirty, KindHash} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == KindSoftDirty {
				if err := softDirtyProbe(); err != nil {
					t.Skipf("soft-dirty cannot run on this kernel: %v", err)
				}
			}
			trackerScenario(t, kind, nil)
		})
	}
	// The userfaultfd is created with the task's credentials: an
	// unprivileged task with vm.unprivileged_userfaultfd=0 needs
	// UFFD_USER_MODE_ONLY, and kernel-mode writes must still be seen.
	t.Run("uffd-wp, task of uid 65534", func(t *testing.T) {
		trackerScenario(t, KindUFFD, &syscall.Credential{Uid: 65534, Gid: 65534})
	})
}

func trackerScenario(t *testing.T, kind Kind, cred *syscall.Credential) {
	d := startDirtierAs(t, 256, "all", cred)
	fdsBefore := fdsOf(t, d.PID)
	sink := newMemSink(d.PageSize)
	s, err := start(d.PID, sink, Options{Tracker: kind})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer s.Close()
	if got := fdsOf(t, d.PID); !slices.Equal(got, fdsBefore) {
		t.Fatalf("fds after arming: %v, before %v", got, fdsBefore)
	}
	// sync collects and sends like one round of the engine.
	sync := func() *Delta {
		t.Helper()
		vmas, dl, _, err := s.collect(false)
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		p, err := s.plan(vmas, dl)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if _, err := s.send(context.Background(), vmas, p, false); err != nil {
			t.Fatalf("send: %v", err)
		}
		s.round++
		return dl
	}
	region := Range{d.Base, d.Base + uint64(d.Pages)*d.PageSize}
	first := sync()
	if got := first.Fresh.Intersect(region.Start, region.End); got.Bytes() != region.Len() {
		t.Fatalf("first Sync: region fresh %v, want all of %v", got, region)
	}
	if got := pagesIn(sync().Dirty, d.Base, d.Pages, d.PageSize); len(got) != 0 {
		t.Fatalf("nothing written, yet dirty pages %v", got)
	}
	steps := []struct {
		name string
		cmd  string
		want []uint32
	}{
		{"user writes", "w 3 17 200 201", []uint32{3, 17, 200, 201}},
		{"nothing", "sum", nil},
		{"kernel write (read(2) into the page)", "k 50", []uint32{50}},
		{"same page twice", "w 9 9", []uint32{9}},
		{"MADV_DONTNEED", "z 60", []uint32{60}},
		{"write after DONTNEED", "w 60", []uint32{60}},
		{"several pages, one run", "w 100 101 102 103 104", []uint32{100, 101, 102, 103, 104}},
	}
	for _, st := range steps {
		if ans := d.do("%s", st.cmd); ans == "?" {
			t.Fatalf("%s: dirtier did not understand %q", st.name, st.cmd)
		}
		got := pagesIn(sync().Dirty, d.Base, d.Pages, d.PageSize)
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: dirty pages %v, want %v", st.name, got, st.want)
		}
	}
	// A new mapping is fresh, and tracked from then on.
	var addr uint64
	fmt.Sscanf(d.do("map 8"), "%x", &addr)
	dl := sync()
	if got := dl.Fresh.Intersect(addr, addr+8*d.PageSize).Bytes(); got != 8*d.PageSize {
		t.Errorf("new mapping at %#x: fresh %v", addr, dl.Fresh)
	}
	d.do("w 1")
	dl = sync()
	if dl.Fresh.Intersect(addr, addr+8*d.PageSize).Bytes() != 0 {
		t.Errorf("new mapping still fresh in the next Sync: %v", dl.Fresh)
	}
	if got := pagesIn(dl.Dirty, d.Base, d.Pages, d.PageSize); !slices.Equal(got, []uint32{1}) {
		t.Errorf("after the new mapping: dirty %v, want [1]", got)
	}
	// Shared anonymous memory.
	var shm uint64
	fmt.Sscanf(d.do("shm 4"), "%x", &shm)
	if dl := sync(); dl.Fresh.Intersect(shm, shm+4*d.PageSize).Bytes() != 4*d.PageSize {
		t.Errorf("new shared mapping at %#x: fresh %v", shm, dl.Fresh)
	}
	d.do("pw %x 2", shm)
	if got := sync().Dirty.pageIndices(shm, shm+4*d.PageSize, d.PageSize); !slices.Equal(got, []uint32{2}) {
		t.Errorf("write to shared anonymous page 2: dirty %v", got)
	}
	// A mapping replaced in place (MAP_FIXED) by one of the same kind:
	// uffd-wp sees it unregistered (fresh); the others see its pages
	// changed or gone.
	d.do("fixed %x 8", addr)
	dl = sync()
	replaced := dl.Fresh.Union(dl.Dirty).Intersect(addr, addr+8*d.PageSize).Bytes()
	if replaced != 8*d.PageSize {
		t.Errorf("mapping replaced at %#x: fresh %v dirty %v", addr, dl.Fresh, dl.Dirty)
	}
	if kind == KindUFFD && len(uwFlagged(t, d.PID)) == 0 {
		t.Errorf("no VMA is flagged uw (uffd-wp) in smaps while armed")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := uwFlagged(t, d.PID); len(got) != 0 {
		t.Errorf("after Close, VMAs still uffd-wp registered: %v", got)
	}
	if got := fdsOf(t, d.PID); !slices.Equal(got, fdsBefore) {
		t.Errorf("fds after Close: %v, before %v", got, fdsBefore)
	}
	sum1 := d.do("sum")
	d.do("w 5 6 7")
	if sum2 := d.do("sum"); sum2 == sum1 {
		t.Errorf("task does not work after Close: sum unchanged by writes")
	}
}
