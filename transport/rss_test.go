package transport

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTransferRSS checks that agent memory does not grow with the process
// size: the peak RSS (VmHWM) of a process that sends and receives 4 GiB of
// mixed pages over a session is within 64 MiB of one that moves 256 MiB.
// Both agents run in the child process, so the figure covers both sides.
// It takes about a minute: set MIGRATED_RSS_TEST=1 to run it.
func TestTransferRSS(t *testing.T) {
	if os.Getenv("MIGRATED_RSS_TEST") != "1" {
		t.Skip("set MIGRATED_RSS_TEST=1 to measure peak RSS of 256 MiB and 4 GiB transfers (about a minute)")
	}
	hwm := map[int64]int64{}
	for _, size := range []int64{256 << 20, 1 << 30, 4 << 30} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("MIGRATED_RSS_CHILD=%d", size))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child moving %d bytes: %v\n%s", size, err, out)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "RSS_HWM_KB" {
				hwm[size], _ = strconv.ParseInt(f[1], 10, 64)
			}
			if strings.Contains(sc.Text(), "moved") {
				t.Log(strings.TrimSpace(sc.Text()))
			}
		}
		if hwm[size] == 0 {
			t.Fatalf("child reported no VmHWM:\n%s", out)
		}
		t.Logf("%5d MiB moved: peak RSS %d MiB", size>>20, hwm[size]>>10)
	}
	small, big := hwm[256<<20], hwm[4<<30]
	if d := big - small; d > 64<<10 {
		t.Fatalf("peak RSS %d MiB for 4 GiB vs %d MiB for 256 MiB: %d MiB more (limit 64 MiB)", big>>10, small>>10, d>>10)
	}
}

// TestRSSChild is the child process of TestTransferRSS.
func TestRSSChild(t *testing.T) {
	v := os.Getenv("MIGRATED_RSS_CHILD")
	if v == "" {
		t.Skip("child of TestTransferRSS")
	}
	total, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := newTransport(t, Options{Secret: secretA}), newTransport(t, Options{Secret: secretA})
	ss, ds := connect(t, src, dst)
	if err := ds.ReceivePages(&countSink{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// 16 MiB of pages sent over and over, as the source agent reads a
	// task's memory into a few reusable buffers.
	pages := mixedPages(4096, 42)
	begin := time.Now()
	if err := streamFrom(ctx, ss, ds, 0, int(total), pages); err != nil {
		t.Fatal(err)
	}
	el := time.Since(begin)
	st := ds.ReceivedTotal()
	if st.MemoryBytes != uint64(total) {
		t.Fatalf("received %d bytes, sent %d", st.MemoryBytes, total)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			fmt.Printf("RSS_HWM_KB %s\n", f[1])
		}
	}
	fmt.Printf("moved %d MiB in %v (%.0f MB/s), %d wire bytes\n", total>>20, el.Round(time.Millisecond), float64(total)/el.Seconds()/1e6, st.WireBytes)
}
