package precopy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCgroupFiles(t *testing.T) {
	cg := []struct {
		in   string
		path string
		ok   bool
	}{
		{"0::/system.slice/migrated.service\n", "/system.slice/migrated.service", true},
		{"12:cpu,cpuacct:/\n0::/user.slice\n", "/user.slice", true},
		{"4:memory:/x\n1:cpu:/\n", "", false},
	}
	for _, c := range cg {
		p, ok := cgroupV2Path([]byte(c.in))
		if p != c.path || ok != c.ok {
			t.Errorf("cgroupV2Path(%q) = %q %v", c.in, p, ok)
		}
	}
	mi := []struct {
		in  string
		mnt string
		ok  bool
	}{
		{"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified", true},
		{"29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", true},
		{"29 23 0:26 / /mnt/with\\040space rw - cgroup2 none rw\n", "/mnt/with space", true},
		{"31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", "", false},
	}
	for _, c := range mi {
		m, ok := cgroup2Mount([]byte(c.in))
		if m != c.mnt || ok != c.ok {
			t.Errorf("cgroup2Mount(%q) = %q %v", c.in, m, ok)
		}
	}
	cm := []struct {
		in            string
		quota, period uint64
		err           bool
	}{
		{"max 100000\n", 0, 100000, false},
		{"50000 100000", 50000, 100000, false},
		{"max", 0, 0, true},
		{"0 100000", 0, 0, true},
		{"max 0", 0, 0, true},
		{"x 100000", 0, 0, true},
	}
	for _, c := range cm {
		q, p, err := parseCPUMax([]byte(c.in))
		if q != c.quota || p != c.period || (err != nil) != c.err {
			t.Errorf("parseCPUMax(%q) = %d %d %v", c.in, q, p, err)
		}
		if err != nil && !errors.Is(err, ErrCPUMaxFormat) {
			t.Errorf("parseCPUMax(%q): untyped error %v", c.in, err)
		}
	}
	for _, c := range []struct {
		f    float64
		want string
	}{{0, "max 100000"}, {0.2, "80000 100000"}, {0.999, "1000 100000"}} {
		if got := cpuMaxFor(c.f, 100000); got != c.want {
			t.Errorf("cpuMaxFor(%g) = %q, want %q", c.f, got, c.want)
		}
	}
}

func FuzzCgroupFiles(f *testing.F) {
	f.Add([]byte("0::/user.slice\n"))
	f.Add([]byte("29 23 0:26 / /mnt/with\\040space rw - cgroup2 none rw\n"))
	f.Add([]byte("max 100000"))
	f.Add([]byte("50000 100000"))
	f.Add([]byte("\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cgroupV2Path(b)
		cgroup2Mount(b)
		if q, p, err := parseCPUMax(b); err == nil && p == 0 {
			t.Fatalf("parseCPUMax(%q) = %d %d with no error", b, q, p)
		}
	})
}

// procState is the state letter of /proc/PID/stat ('T' when stopped).
func procState(t *testing.T, pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return s[i+2]
}

// TestSignalThrottle runs the SIGSTOP/SIGCONT duty cycle on a real task:
// the task is seen stopped while throttled, and always running after Pause
// and after Stop.
func TestSignalThrottle(t *testing.T) {
	needRoot(t)
	d := startDirtier(t, 16, "all")
	th := newSignalThrottle(d.PID, 20*time.Millisecond)
	defer th.Stop()
	if err := th.Set(0.9); err != nil {
		t.Fatal(err)
	}
	stopped := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !stopped; time.Sleep(time.Millisecond) {
		stopped = procState(t, d.PID) == 'T'
	}
	if !stopped {
		t.Fatalf("task never seen stopped under a 90%% throttle")
	}
	th.Pause()
	for i := 0; i < 20; i++ {
		if st := procState(t, d.PID); st == 'T' {
			t.Fatalf("task stopped while the throttle is paused")
		}
		time.Sleep(2 * time.Millisecond)
	}
	th.Resume()
	time.Sleep(50 * time.Millisecond)
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}
	// Let any signal in flight land, then the task must run and answer.
	time.Sleep(30 * time.Millisecond)
	for i := 0; i < 20; i++ {
		if st := procState(t, d.PID); st == 'T' {
			t.Fatalf("task left stopped after Stop")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if ans := d.do("sum"); ans == "" {
		t.Fatalf("task does not answer after the throttle stopped")
	}
	th.mu.Lock()
	cycles := th.Cycles
	th.mu.Unlock()
	if cycles == 0 {
		t.Errorf("no stop/continue cycle counted")
	}
}

// TestNewThrottleOnThisHost: where the task shares its cgroup (or cpu is
// a cgroup v1 controller, as on this machine), the fallback is the signal
// duty cycle.
func TestNewThrottleOnThisHost(t *testing.T) {
	needRoot(t)
	d := startDirtier(t, 16, "all")
	th := NewThrottle(d.PID)
	defer th.Stop()
	_, err := newCgroupThrottle(d.PID)
	switch {
	case err == nil && th.Kind() != "cgroup-cpu.max":
		t.Errorf("cgroup usable, but NewThrottle chose %s", th.Kind())
	case err != nil && th.Kind() != "sigstop":
		t.Errorf("cgroup unusable (%v), but NewThrottle chose %s", err, th.Kind())
	}
	t.Logf("throttle here: %s (cgroup: %v)", th.Kind(), err)
}
