package move

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// deprioritize sets every thread of pid to nice 19 (best effort).
func deprioritize(pid int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
		}
	}
}
