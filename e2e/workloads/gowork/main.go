// Command gowork is the Go workload of the task-engine issue, part 2: a Go
// runtime (many threads, signals, timers) with goroutines, timers, a
// channel pipeline and a large heap, following the workload protocol of
// e2e/workload (--dir, DIR/ready, DIR/progress.log, SIGUSR2, DIR/result).
//
//	--heap-mib=N   heap to fill and verify (default 200)
//	--workers=N    counting goroutines (default 4)
//	--corrupt      damage one heap byte before the final check
//	--log-unlinked unlink progress.log once open: it lives only in the fd (a
//	               deleted file, whose contents travel with a move), so the
//	               running program changes no file by name (hosts that share
//	               no storage); the check reads it through /proc/self/fd
//
// After SIGUSR2 it checks: every heap byte against its pattern; each worker's
// counter against its own model; the pipeline delivered every item in order
// with the right value; the ticker and an AfterFunc chain are still firing;
// time.Since never went negative between heartbeats and is sane overall; the
// pid is unchanged; the progress log's offset and content. It exits 0 only
// when all of it holds.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const chunk = 1 << 20

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func fill(b []byte, seed uint64) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := mix(seed*0x100000001b3 + uint64(i/8))
		b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		b[i+4], b[i+5], b[i+6], b[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
}

// failures keeps the first failure as the reason.
type failures struct {
	mu    sync.Mutex
	first string
	n     int
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.first = fmt.Sprintf(format, args...)
	}
	f.n++
}

type worker struct {
	count   atomic.Uint64 // published
	private uint64        // only the worker touches it until it stops
}

type item struct {
	seq uint64
	sq  uint64
}

func main() {
	dir := flag.String("dir", "", "work directory")
	heapMiB := flag.Int("heap-mib", 200, "heap to fill, MiB")
	nworkers := flag.Int("workers", 4, "counting goroutines")
	corrupt := flag.Bool("corrupt", false, "damage the heap before the check")
	unlinked := flag.Bool("log-unlinked", false, "unlink progress.log once open")
	flag.Parse()
	if *dir == "" || *heapMiB <= 0 || *nworkers <= 0 {
		fmt.Fprintln(os.Stderr, "gowork: --dir is required; sizes must be positive")
		os.Exit(2)
	}
	var fail failures
	pid := os.Getpid()
	start := time.Now()

	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)

	logf, err := os.OpenFile(filepath.Join(*dir, "progress.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		fatal(err)
	}
	logPath := logf.Name()
	if *unlinked {
		if err := os.Remove(logPath); err != nil {
			fatal(err)
		}
		logPath = fmt.Sprintf("/proc/self/fd/%d", logf.Fd())
	}

	heap := make([][]byte, *heapMiB)
	for i := range heap {
		heap[i] = make([]byte, chunk)
		fill(heap[i], uint64(i)+7)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup

	// Workers: each counts, with a private copy only it touches.
	workers := make([]*worker, *nworkers)
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				w.private++
				w.count.Store(w.private)
				if w.private%64 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}

	// Pipeline: generate -> square -> check order and values.
	gen := make(chan uint64, 16)
	sq := make(chan item, 16)
	var delivered atomic.Uint64
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(gen)
		for i := uint64(0); ; i++ {
			select {
			case gen <- i:
			case <-stop:
				return
			}
			if i%100 == 99 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		defer close(sq)
		for i := range gen {
			sq <- item{i, i * i}
		}
	}()
	go func() {
		defer wg.Done()
		next := uint64(0)
		for it := range sq {
			if it.seq != next || it.sq != next*next {
				fail.add("pipeline delivered %d (square %d), expected %d", it.seq, it.sq, next)
			}
			next = it.seq + 1
			delivered.Store(next)
		}
	}()

	// A ticker that also checks time never runs backwards.
	var ticks atomic.Uint64
	ticker := time.NewTicker(5 * time.Millisecond)
	wg.Add(1)
	go func() {
		defer wg.Done()
		prev := time.Now()
		for {
			select {
			case <-ticker.C:
				// time.Now, not the tick's value: the runtime computes
				// that from a reading of the clock taken before it
				// runs the timer (Now minus how late the timer is, with
				// "late" measured at that earlier reading), so on a slow
				// machine (TCG) consecutive tick values can go back by
				// the time the runtime spent in between, moved or not.
				now := time.Now()
				if d := now.Sub(prev); d < 0 {
					fail.add("monotonic time went backwards by %v between ticks", -d)
				}
				if d := time.Since(prev); d < 0 {
					fail.add("time.Since went negative: %v", d)
				}
				prev = now
				ticks.Add(1)
			case <-stop:
				ticker.Stop()
				return
			}
		}
	}()

	// A self re-arming AfterFunc chain.
	var afterFuncs atomic.Uint64
	var chainMu sync.Mutex
	chainStopped := false
	var arm func()
	arm = func() {
		time.AfterFunc(7*time.Millisecond, func() {
			afterFuncs.Add(1)
			chainMu.Lock()
			defer chainMu.Unlock()
			if !chainStopped {
				arm()
			}
		})
	}
	arm()

	// The progress log, written by main.
	var lines, logBytes int64
	line := func(n int64) string { return fmt.Sprintf("progress %010d\n", n) }
	writeProgress := func() {
		off, err := logf.Seek(0, io.SeekCurrent)
		if err != nil || off != logBytes {
			fail.add("progress.log offset is %d, expected %d (%v)", off, logBytes, err)
		}
		l := line(lines + 1)
		if _, err := logf.WriteString(l); err != nil {
			fail.add("write progress.log: %v", err)
			return
		}
		lines++
		logBytes += int64(len(l))
	}

	if err := os.WriteFile(filepath.Join(*dir, "ready.tmp"), []byte(fmt.Sprintf("%d\n", pid)), 0o644); err != nil {
		fatal(err)
	}
	if err := os.Rename(filepath.Join(*dir, "ready.tmp"), filepath.Join(*dir, "ready")); err != nil {
		fatal(err)
	}

	progress := time.NewTicker(10 * time.Millisecond)
	lastBeat := time.Now()
loop:
	for {
		select {
		case <-progress.C:
			if d := time.Since(lastBeat); d < 0 {
				fail.add("time.Since(last heartbeat) is negative: %v", d)
			}
			lastBeat = time.Now()
			writeProgress()
		case <-usr2:
			break loop
		}
	}
	progress.Stop()

	// Timers must still fire now (after a move): wait for a few more.
	t0, a0 := ticks.Load(), afterFuncs.Load()
	deadline := time.Now().Add(5 * time.Second)
	for (ticks.Load() < t0+3 || afterFuncs.Load() < a0+3) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ticks.Load() < t0+3 {
		fail.add("the ticker stopped: %d ticks in 5s", ticks.Load()-t0)
	}
	if afterFuncs.Load() < a0+3 {
		fail.add("the AfterFunc chain stopped: %d runs in 5s", afterFuncs.Load()-a0)
	}

	close(stop)
	chainMu.Lock()
	chainStopped = true
	chainMu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fail.add("goroutines did not stop within 10s")
	}

	for i, w := range workers {
		if w.private != w.count.Load() || w.private == 0 {
			fail.add("worker %d: private counter %d, published %d", i, w.private, w.count.Load())
		}
	}
	if delivered.Load() == 0 {
		fail.add("the pipeline delivered nothing")
	}

	if *corrupt {
		heap[len(heap)/2][4321] ^= 0x20
	}
	want := make([]byte, chunk)
	for i, c := range heap {
		fill(want, uint64(i)+7)
		if !bytes.Equal(c, want) {
			off := 0
			for c[off] == want[off] {
				off++
			}
			fail.add("heap chunk %d differs at byte %d: %#x != %#x", i, off, c[off], want[off])
			break
		}
	}
	// The heap still works: the GC runs and new memory is usable.
	runtime.GC()
	extra := make([]byte, 16<<20)
	fill(extra, 99)
	runtime.KeepAlive(extra)

	if now := os.Getpid(); now != pid {
		fail.add("pid changed from %d to %d", pid, now)
	}
	since := time.Since(start)
	if since <= 0 || since > 24*time.Hour {
		fail.add("time.Since(start) is %v", since)
	}
	checkLog(logf, logPath, lines, logBytes, line, &fail)

	var out strings.Builder
	if fail.n == 0 {
		out.WriteString("PASS\n")
	} else {
		fmt.Fprintf(&out, "FAIL: %s\nfailures=%d\n", fail.first, fail.n)
	}
	fmt.Fprintf(&out, "progress=%d\npid=%d\nticks=%d\nafter_funcs=%d\ndelivered=%d\nheap_mib=%d\nuptime_ms=%d\ngoroutines=%d\n",
		lines, pid, ticks.Load(), afterFuncs.Load(), delivered.Load(), *heapMiB, since.Milliseconds(), runtime.NumGoroutine())
	if err := os.WriteFile(filepath.Join(*dir, "result.tmp"), []byte(out.String()), 0o644); err != nil {
		fatal(err)
	}
	if err := os.Rename(filepath.Join(*dir, "result.tmp"), filepath.Join(*dir, "result")); err != nil {
		fatal(err)
	}
	if fail.n != 0 {
		os.Exit(1)
	}
}

func checkLog(f *os.File, path string, lines, size int64, line func(int64) string, fail *failures) {
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil || off != size {
		fail.add("progress.log fd offset is %d, expected %d (%v)", off, size, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fail.add("read progress.log: %v", err)
		return
	}
	var want strings.Builder
	for i := int64(1); i <= lines; i++ {
		want.WriteString(line(i))
	}
	if string(b) != want.String() {
		n := 0
		for n < len(b) && n < want.Len() && b[n] == want.String()[n] {
			n++
		}
		fail.add("progress.log differs from the lines written at byte %d (size %d, expected %d)", n, len(b), want.Len())
	}
}

func fatal(err error) {
	var pe *os.PathError
	if errors.As(err, &pe) {
		fmt.Fprintf(os.Stderr, "gowork: %s %s: %v\n", pe.Op, pe.Path, pe.Err)
	} else {
		fmt.Fprintf(os.Stderr, "gowork: %v\n", err)
	}
	os.Exit(2)
}
