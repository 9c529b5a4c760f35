package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Renice sets the niceness of every thread of this process (nice is per
// thread in Linux; threads made later inherit it). The agent runs niced by
// default: while it pre-copies a task, both compete for the CPU, and the
// task should win (its own heartbeat is the downtime that matters), as
// QEMU's migration thread yields to the guest. When the task is frozen for
// the cutover nothing competes with the agent.
func Renice(nice int) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("nice %d for thread %d: %w", nice, tid, err)
		}
	}
	return nil
}

// boost counts the moves in their cutover (see BoostForCutover).
var boost struct {
	sync.Mutex
	n    int
	base int // the niceness to return to
}

// BoostForCutover runs the agent at nice 0 until the returned function is
// called: while a task is frozen for its cutover (and on the destination,
// during the small rounds before it), the agent's work is the task's
// downtime, and on a shared host other processes at nice 0 would otherwise
// take the CPU from a niced agent. Concurrent moves share the boost; the
// last one to end restores the niceness the agent had. An agent that runs
// at nice 0 or below already is left alone.
func BoostForCutover() (end func()) {
	boost.Lock()
	defer boost.Unlock()
	if boost.n == 0 {
		boost.base = ownNice()
		if boost.base > 0 {
			_ = Renice(0)
		}
	}
	boost.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			boost.Lock()
			defer boost.Unlock()
			boost.n--
			if boost.n == 0 && boost.base > 0 {
				_ = Renice(boost.base)
			}
		})
	}
}

// ownNice reads this process's niceness (field 19 of /proc/self/stat; the
// raw getpriority system call returns 20 minus it).
func ownNice() int {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 17 {
		return 0
	}
	n, _ := strconv.Atoi(f[16])
	return n
}
