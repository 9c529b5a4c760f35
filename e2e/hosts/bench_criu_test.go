package hosts_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/workload"
)

// The CRIU side of BenchmarkMove: the same workload moved between the same
// two namespace hosts by CRIU 4's page-server dump and restore, in the same
// run, so that the two compare on the same machine at the same moment.
//
//	MIGRATED_CRIU=PATH   the criu binary to use (4.x); without it the
//	                     benchmark runs e2e/criu/fetch.sh, which unpacks CRIU 4
//	                     from the distribution's newer suite into the e2e
//	                     cache, and leaves CRIU out (saying why) if that fails
//	MIGRATED_CRIU=off    no CRIU side
const benchCRIUEnv = "MIGRATED_CRIU"

// criuBinary finds or fetches criu 4.x; "" and the reason when there is none.
func criuBinary(tb testing.TB) (string, string) {
	tb.Helper()
	path := os.Getenv(benchCRIUEnv)
	if path == "off" {
		return "", benchCRIUEnv + "=off"
	}
	if path == "" {
		script, err := filepath.Abs(filepath.Join("..", "criu", "fetch.sh"))
		if err != nil {
			return "", err.Error()
		}
		var stderr strings.Builder
		cmd := exec.Command("bash", script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Sprintf("e2e/criu/fetch.sh: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		path = strings.TrimSpace(string(out))
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("%s --version: %v: %s", path, err, out)
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "Version:"))
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n < 4 {
		return "", fmt.Sprintf("%s is CRIU %s, not 4.x", path, v)
	}
	return path, ""
}

// criuResult is one CRIU move.
type criuResult struct {
	downtimeMs float64 // the workload's longest heartbeat gap
	totalMs    float64 // from the dump's start to the restore's return
	dumpMs     float64
	pageBytes  int64 // what the page server received (pages-*.img)
	imageBytes int64 // everything the restore read
}

// criuMove moves a fresh mixed workload of mib MiB from host src to host dst
// with CRIU: a page server on dst receives the pages while `criu dump` runs
// on src, the other images are then copied over (they are small), and
// `criu restore --restore-detached` on dst resumes the task. Images live on
// tmpfs (/dev/shm), as in FACTS.md's measurement. The workload then checks
// its own memory and reports its heartbeat gaps, like after our moves.
// Images go to a tmpfs under tmp (see criuTmpfs).
func criuMove(b *testing.B, env *hosts.Env, ctx context.Context, set *workload.Set, criu, tmp string, mib, src, dst int) criuResult {
	b.Helper()
	hs, hd := env.Host(src), env.Host(dst)
	// CRIU dumps a session only with its leader, and files only on mounts
	// of the task's mount namespace: the workload leads its own session
	// (setsid(1)), where ours starts in the harness's, and its standard
	// files are opened inside the host, where ours are the harness's.
	opts := env.WorkloadOpts(ctx, hs, fmt.Sprintf("--size-mib=%d", mib))
	launch := opts.Launch
	opts.Launch = func(l workload.Launch) (int, error) {
		l.Argv = append([]string{"setsid", "sh", "-c", `out=$1; shift; exec "$@" </dev/null >>"$out" 2>&1`,
			"sh", l.Output.Name()}, l.Argv...)
		return launch(l)
	}
	p := set.Start(b, "mixed", opts)
	pid, err := p.WaitReady()
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)

	base, err := os.MkdirTemp(tmp, "move-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	dumpDir, pageDir := filepath.Join(base, "dump"), filepath.Join(base, "dst")
	for _, d := range []string{dumpDir, pageDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	port := "27027"
	fail := func(what string, err error, logs ...string) {
		for _, l := range logs {
			if t, e := os.ReadFile(l); e == nil {
				lines := strings.Split(strings.TrimSpace(string(t)), "\n")
				var errs []string
				for _, x := range lines {
					if strings.Contains(x, "Error") || strings.Contains(x, "Warn") {
						errs = append(errs, x)
					}
				}
				b.Logf("%s: errors and warnings:\n%s\nlast lines:\n%s", l, strings.Join(errs, "\n"),
					strings.Join(lines[max(0, len(lines)-10):], "\n"))
			}
		}
		b.Fatalf("CRIU %s: %v", what, err)
	}

	// The page server says it listens by writing to its status fd.
	rd, wr, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	ps := hd.Command(ctx, criu, "page-server", "-D", pageDir, "--address", hd.Addr.String(), "--port", port,
		"--status-fd", "1", "-o", filepath.Join(pageDir, "page-server.log"))
	var psErr strings.Builder
	ps.Stdout, ps.Stderr = wr, &psErr
	if err := ps.Start(); err != nil {
		b.Fatal(err)
	}
	wr.Close()
	ready := make(chan error, 1)
	go func() {
		var one [1]byte
		_, err := io.ReadFull(rd, one[:])
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = ps.Wait()
			fail("page-server did not start", fmt.Errorf("%v: %s", err, psErr.String()), filepath.Join(pageDir, "page-server.log"))
		}
	case <-time.After(30 * time.Second):
		fail("page-server did not start", fmt.Errorf("timeout"), filepath.Join(pageDir, "page-server.log"))
	}
	rd.Close()

	t0 := time.Now()
	dump := hs.Command(ctx, criu, "dump", "-t", strconv.Itoa(pid), "-D", dumpDir, "--shell-job",
		"--page-server", "--address", hd.Addr.String(), "--port", port, "-o", "dump.log")
	if out, err := dump.CombinedOutput(); err != nil {
		fail("dump", fmt.Errorf("%v: %s", err, out), filepath.Join(dumpDir, "dump.log"))
	}
	dumped := time.Since(t0)
	if err := ps.Wait(); err != nil {
		fail("page-server", err, filepath.Join(pageDir, "page-server.log"))
	}
	ents, err := os.ReadDir(dumpDir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".img") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dumpDir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pageDir, e.Name()), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	restore := hd.Command(ctx, criu, "restore", "-D", pageDir, "--shell-job", "--restore-detached",
		"-o", "restore.log")
	if out, err := restore.CombinedOutput(); err != nil {
		fail("restore", fmt.Errorf("%v: %s", err, out), filepath.Join(pageDir, "restore.log"))
	}
	total := time.Since(t0)

	r := criuResult{totalMs: float64(total) / 1e6, dumpMs: float64(dumped) / 1e6}
	ents, _ = os.ReadDir(pageDir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".img") {
			r.imageBytes += fi.Size()
			if strings.HasPrefix(e.Name(), "pages-") {
				r.pageBytes += fi.Size()
			}
		}
	}
	if !hd.HasPID(pid) || hs.HasPID(pid) {
		b.Fatalf("CRIU restore: pid %d is not on %s alone", pid, hd.Name)
	}
	res, err := p.Finish(pid)
	if err != nil || !res.Passed() {
		b.Fatalf("workload after the CRIU move: %v %s", err, res.Status)
	}
	g, _ := res.Int("max_gap_us")
	r.downtimeMs = float64(g) / 1000
	b.Logf("CRIU: dump %.0f ms, total %.0f ms, heartbeat gap %.1f ms, pages %d bytes, images %d bytes",
		r.dumpMs, r.totalMs, r.downtimeMs, r.pageBytes, r.imageBytes)
	return r
}

// criuTmpfs mounts a tmpfs for CRIU's images in a new directory, before the
// hosts exist: each host's mount namespace is a copy of the harness's made
// when the host starts, so the hosts see this one (not a later mount, and
// not the machine's /dev/shm, which they replace).
func criuTmpfs(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "migrated-bench-criu-")
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8g,mode=0700"); err != nil {
		os.Remove(dir)
		b.Fatalf("tmpfs for CRIU images: %v", err)
	}
	b.Cleanup(func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = os.Remove(dir)
	})
	return dir
}
