package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/precopy"
)

// CPUProfileEnv, a directory in an agent's environment, makes the agent
// write a CPU profile of each move it takes part in there
// (<role>-<unix nanoseconds>.pprof), for benchmarks. One profile runs at a
// time per agent; a move that starts while another is profiled is not.
const CPUProfileEnv = "MIGRATED_MOVE_CPUPROFILE"

var profileMu sync.Mutex

// moveCost measures what one move costs the agent: CPU time (user and
// system, all threads; rusage of the whole process, so concurrent moves
// blur it), garbage collections, and optionally a CPU profile. end logs it
// at debug level.
type moveCost struct {
	log     *slog.Logger
	role    string
	start   time.Time
	ru      unix.Rusage
	gc      uint32
	pause   uint64
	profile *os.File
}

func startMoveCost(log *slog.Logger, role string) *moveCost {
	c := &moveCost{log: log, role: role, start: time.Now()}
	_ = unix.Getrusage(unix.RUSAGE_SELF, &c.ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c.gc, c.pause = ms.NumGC, ms.PauseTotalNs
	if dir := os.Getenv(CPUProfileEnv); dir != "" && profileMu.TryLock() {
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, time.Now().UnixNano()))
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			c.profile = f
		} else {
			if f != nil {
				f.Close()
			}
			profileMu.Unlock()
			log.Warn("cpu profile", "path", path, "err", err)
		}
	}
	return c
}

func (c *moveCost) end() {
	if c.profile != nil {
		pprof.StopCPUProfile()
		c.profile.Close()
		profileMu.Unlock()
	}
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	tv := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	c.log.Debug("move cost", "role", c.role, "wall_s", time.Since(c.start).Seconds(),
		"user_s", tv(ru.Utime)-tv(c.ru.Utime), "sys_s", tv(ru.Stime)-tv(c.ru.Stime),
		"gc", ms.NumGC-c.gc, "gc_pause_ms", float64(ms.PauseTotalNs-c.pause)/1e6,
		"heap_MiB", float64(ms.HeapAlloc)/(1<<20), "maxrss_MiB", float64(ru.Maxrss)/1024,
		"mono_ms", precopy.MonotonicMs())
}
