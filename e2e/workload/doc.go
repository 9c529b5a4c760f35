// Package workload builds and runs the self-checking programs that the
// engine, the e2e harness and the benchmarks move: real C, Go and Python
// processes that verify their own state after a move and report the verdict
// in a file. The sources live in e2e/workloads/; this package owns compiling
// them and the run protocol. It must not know how a process is moved: it
// starts a workload, tells it to finish, and reads what it says.
//
// # The protocol
//
// Every workload takes --dir=DIR (its work directory) and --corrupt, plus its
// own options (see each source's header comment). It runs with stdin on
// /dev/null and stdout and stderr on DIR/output, a regular file, so that it
// holds no fd kind the engine cannot move (the Go workload also holds the Go
// runtime's epoll and eventfd descriptors). Its environment is small and
// fixed, and carries MIGRATED_WORKLOAD=DIR, by which any copy of it can be
// found in /proc (see Proc.Pids), whatever its PID namespace.
//
//	DIR/ready         "<pid>\n", written atomically (rename) once set up; the
//	                  pid as the workload sees it (its own PID namespace)
//	DIR/progress.log  progress lines, appended through one fd that stays open
//	                  and has no O_APPEND: a lost file offset shows as an
//	                  overwritten or missing line at the final check
//	DIR/result        written atomically after SIGUSR2: first line "PASS" or
//	                  "FAIL: <reason>", then "key=value" lines (progress,
//	                  counters, max_gap_us for the benchmark workload, final
//	                  for the hash chain); then the workload exits, 0 on PASS
//	DIR/output        stdout and stderr
//
// On SIGUSR2 a workload checks everything it set up: memory it filled
// (recomputed from the pattern, so a single flipped bit is found and its
// offset named), counters and their models, thread-local state and TIDs,
// signal handlers, masks, alternate stacks and timers, file offsets, and that
// CLOCK_MONOTONIC never went backwards. With --corrupt it damages its own
// state just before that check, which must then report FAIL: the negative
// test that proves the checks can fail.
//
// The result comes through a file, never an exit status: a restored process
// is not a child of the test.
//
// # The workloads
//
// Names for Set.Start; each source's header comment has the details.
//
//	simple, simple-static   single-threaded: brk heap, private/shared anonymous and
//	                        private file mappings (the file must not change),
//	                        rw / PROT_NONE / read-only pages (faults probed), a work
//	                        array with a model, SIGUSR1 and SIGALRM handlers on a
//	                        sigaltstack, setitimer(ITIMER_REAL); --mode=busy,
//	                        nanosleep (EINTR resumed with the remaining time; no
//	                        sleep may end early) or pause (one step per SIGUSR1)
//	threads, threads-static 8 pthreads: TLS counters and buffers, TIDs, names, masks
//	                        and sigaltstacks per thread, mutex+condvar ping-pong,
//	                        queued SIGRTMIN from one thread to another (none lost),
//	                        a robust mutex, one held by a thread that exits raw
//	                        (EOWNERDEAD and pthread_join need the kernel's robust
//	                        list and clear-child-tid), a thread asleep in a futex
//	mixed                   --size-mib N of 1/4 zero, 1/2 random, 1/4 text pages,
//	                        --dirty-rate pages/s dirtied under a version model,
//	                        1 ms heartbeat: max_gap_us (downtime) and gaps
//	gowork                  Go: 200 MiB heap, goroutines, ticker, AfterFunc chain,
//	                        channel pipeline, time.Since sanity
//	chain                   python3: a sha256 chain; final= must equal ChainFinal
//	zdtm/<feature>          one program per kernel feature: maps, mprotect, fpu,
//	                        pthreads, futex, robust, rseq, sigaltstack, signals
//	                        (pending), itimers, cwd, umask, rlimits, env, cmdline,
//	                        deleted, vdso, mapshared, shmanon (Set.ZDTM lists them)
//	<name>-i386             simple, simple-static (-i386-static), threads and every
//	                        zdtm program built with gcc -m32; they run only where
//	                        the kernel executes i386 programs
//
// # The driver
//
//	set := workload.Build(t)                  // once per test binary; skips when a compiler is missing
//	p := set.Start(t, "simple", workload.Opts{Args: []string{"--mode=nanosleep"}})
//	pid, err := p.WaitReady()
//	// ... checkpoint pid, restore it (same PID) ...
//	res, err := p.Finish(pid)                  // SIGUSR2, then wait for DIR/result
//	if !res.Passed() { t.Fatal(res.Status) }
//
// In a namespace host the harness starts the workload itself through
// Opts.Launch (the host's init forks and reaps it), delivers signals through
// Opts.Signal (or signals it and calls WaitResult), and finds any copy of it
// by its marker with Pids:
//
//	p := set.Start(t, "threads", workload.Opts{
//		Launch: func(l workload.Launch) (int, error) {
//			c := hostA.Command(ctx, l.Argv[0], l.Argv[1:]...)
//			c.Env, c.Dir, c.Stdout, c.Stderr = l.Env, l.Dir, l.Output, l.Output
//			if err := c.Start(); err != nil {
//				return 0, err
//			}
//			return c.Process.RootPID, nil
//		},
//		Signal: func(pid int, sig syscall.Signal) error { return current.Signal(pid, sig) },
//	})
//
// Outside a test (a benchmark harness, the demo) use Load instead of Build
// and Set.StartProcess instead of Start, and call Proc.Stop when done.
//
// Build compiles every program once into a directory named after a hash of the
// sources and the toolchains (under os.TempDir), so later test binaries reuse
// it. The driver never waits for a workload in the background: a waiter in the
// tracer's own process would consume the tracer's ptrace stops. Call
// Proc.Reap after the original was killed (for example by a checkpoint) so
// that its PID is free again; Finish reaps the finished process when it is a
// child of the test. Start also marks descriptors the test process inherited
// close-on-exec: Go does not close them, and a runner's pipe would otherwise
// reach the workload and make the engine refuse it.
//
// Debian packages: gcc and libc6-dev (C, -static), gcc-multilib and
// libc6-dev-i386 (the i386 variants; they only run where the kernel executes
// i386 programs), python3 (chain), and the Go toolchain (gowork).
package workload
