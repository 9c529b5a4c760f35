package engine_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/workload"
)

// buildMigrated builds the migrated binary once for the benchmark.
func buildMigrated(tb testing.TB) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "migrated")
	cmd := exec.Command("go", "build", "-o", out, "github.com/migrated/migrated/cmd/migrated")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build migrated: %v\n%s", err, b)
	}
	return out
}

// runMeasured runs the migrated binary and returns its stdout, wall time
// and peak RSS (getrusage of the child).
func runMeasured(tb testing.TB, bin string, args ...string) ([]byte, time.Duration, int64) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return out, d, ru.Maxrss * 1024
}

// BenchmarkCheckpointRestore checkpoints the mixed workload (a quarter zero
// pages, half random, a quarter text, 1000 dirty pages/s, as FACTS.md's CRIU
// baseline) to an image on tmpfs with `migrated checkpoint`, restores it with
// `migrated restore`, and reports both times and the peak RSS of each
// migrated process. CRIU 4.2.1 on this machine (FACTS.md): 0.94 s (256 MiB)
// and 2.79 s (1 GiB) for dump + restore.
func BenchmarkCheckpointRestore(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	set := workload.Build(b)
	bin := buildMigrated(b)
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = b.TempDir()
	}
	for _, mib := range []int{256, 1024} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			var ckptMs, restMs, ckptRSS, restRSS, imgBytes float64
			for i := 0; i < b.N; i++ {
				p := set.Start(b, "mixed", workload.Opts{Args: []string{fmt.Sprintf("--size-mib=%d", mib)}, ReadyTimeout: 120 * time.Second})
				pid, err := p.WaitReady()
				if err != nil {
					b.Fatal(err)
				}
				img := filepath.Join(dir, fmt.Sprintf("migrated-bench-%d.img", pid))
				out, d1, rss1 := runMeasured(b, bin, "checkpoint", fmt.Sprint(pid), "-o", img, "--json")
				var cr struct {
					ImageBytes int64   `json:"image_bytes"`
					TotalMs    float64 `json:"total_ms"`
				}
				if err := json.Unmarshal(out, &cr); err != nil {
					b.Fatalf("checkpoint --json: %v: %s", err, out)
				}
				_ = d1 // the wall time includes waiting for the test to reap the original
				if err := p.Reap(10 * time.Second); err != nil {
					b.Fatal(err)
				}
				_, d2, rss2 := runMeasured(b, bin, "restore", img, "--json")
				os.Remove(img)
				res, err := p.Finish(pid)
				if err != nil || !res.Passed() {
					b.Fatalf("workload after the restore: %v %s", err, res.Status)
				}
				ckptMs += cr.TotalMs
				restMs += float64(d2.Milliseconds())
				ckptRSS += float64(rss1) / (1 << 20)
				restRSS += float64(rss2) / (1 << 20)
				imgBytes += float64(cr.ImageBytes)
			}
			n := float64(b.N)
			b.ReportMetric(ckptMs/n, "checkpoint-ms")
			b.ReportMetric(restMs/n, "restore-ms")
			b.ReportMetric(ckptRSS/n, "checkpoint-rss-MiB")
			b.ReportMetric(restRSS/n, "restore-rss-MiB")
			b.ReportMetric(imgBytes/n/float64(mib<<20), "image/memory")
		})
	}
}
