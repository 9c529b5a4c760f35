package agent

import (
	"fmt"
	"os"
	"strconv"
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
