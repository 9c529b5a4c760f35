package power

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// needGuests skips unless the POWER tier was asked for: booting two TCG
// guests takes tens of seconds and needs root, QEMU and the cross compilers.
func needGuests(t *testing.T) {
	t.Helper()
	if os.Getenv("MIGRATED_E2E_POWER") != "1" {
		t.Skip("boots QEMU POWER guests: set MIGRATED_E2E_POWER=1 (make e2e-power runs it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, kernel cache)")
	}
}

// needArches skips when MIGRATED_E2E_POWER_ARCHES (comma separated, for
// example "ppc64le") is set and lacks one of arches: CI runs the ppc64le
// pairs only, which need no big-endian kernel (building one takes over an
// hour here when ../shared/guest has none).
func needArches(t *testing.T, arches ...string) {
	t.Helper()
	only := os.Getenv("MIGRATED_E2E_POWER_ARCHES")
	if only == "" {
		return
	}
	for _, a := range arches {
		if !slices.Contains(strings.Split(only, ","), a) {
			t.Skipf("needs %s guests; MIGRATED_E2E_POWER_ARCHES=%s", a, only)
		}
	}
}

// updateTestdata is set by run.sh -update: guest captures are written to testdata/.
func updateTestdata() bool { return os.Getenv("MIGRATED_E2E_POWER_UPDATE") == "1" }

// keptWorkDir is a work directory for a pair that is removed when the test
// passes and kept (consoles, control transcripts, images) when it fails.
func keptWorkDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "migrated-power-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("work directory kept for inspection: %s", d)
			return
		}
		os.RemoveAll(d)
	})
	return d
}

// guestCheck is one check run in every guest of a pair.
type guestCheck struct {
	name string
	argv []string
}

// TestPowerGuests boots a ppc64le pair and a big-endian pair, and in each
// guest checks what the engine relies on: ptrace SEIZE/INTERRUPT, soft-dirty,
// 64 KiB pages, guest-to-guest TCP; it captures register dumps and auxv.
func TestPowerGuests(t *testing.T) {
	needGuests(t)
	tests := []struct {
		arch   string
		cpu    string
		cpu1   string // guest 1's CPU when it differs
		checks []guestCheck
		// regdumps: name of the capture -> argv printing a dump; the tracee's
		// PRSTATUS length and byte order.
		regdumps []regdumpCase
		auxv     map[string][]string // capture name prefix -> argv printing auxv, run in both guests
		// no32 expects 32-bit programs to be refused by the kernel.
		no32 bool
	}{
		{
			arch: ArchPPC64LE, cpu: "POWER9",
			checks: []guestCheck{
				{"ptrace", []string{"/bin/powercheck", "ptrace"}},
				{"softdirty", []string{"/bin/powercheck", "softdirty"}},
				{"pagesize", []string{"/bin/powercheck", "pagesize", "65536"}},
			},
			cpu1:     "POWER10",
			regdumps: []regdumpCase{{"regs-ppc64le", []string{"/bin/powercheck", "regdump"}, 384, binary.LittleEndian, 8}},
			auxv:     map[string][]string{"auxv-ppc64le": {"/bin/powercheck", "auxv"}},
			no32:     true,
		},
		{
			arch: ArchPPC64, cpu: "POWER9",
			checks: []guestCheck{
				{"ptrace", []string{"/bin/powercheck", "ptrace"}},
				{"softdirty", []string{"/bin/powercheck", "softdirty"}},
				{"pagesize", []string{"/bin/powercheck", "pagesize", "65536"}},
				{"ptrace32", []string{"/bin/powercheck32", "ptrace"}},
				{"softdirty32", []string{"/bin/powercheck32", "softdirty"}},
				{"pagesize32", []string{"/bin/powercheck32", "pagesize", "65536"}},
			},
			regdumps: []regdumpCase{
				{"regs-ppc64", []string{"/bin/powercheck", "regdump"}, 384, binary.BigEndian, 8},
				{"regs-ppc32", []string{"/bin/powercheck", "regdump", "/bin/powercheck32"}, 192, binary.BigEndian, 4},
			},
			auxv: map[string][]string{
				"auxv-ppc64": {"/bin/powercheck", "auxv"},
				"auxv-ppc32": {"/bin/powercheck32", "auxv"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			needArches(t, tc.arch)
			ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
			defer cancel()
			work := keptWorkDir(t)
			begin := time.Now()
			files := map[string]File{}
			for _, b := range []struct{ arch, name string }{{tc.arch, "powercheck"}, {ArchPPC, "powercheck32"}} {
				out := filepath.Join(work, b.name)
				if err := BuildC(ctx, b.arch, out, []string{"-std=gnu11", "-mcpu=power8"},
					filepath.Join(HarnessDir(), "cprog", "powercheck.c")); err != nil {
					t.Fatal(err)
				}
				files["bin/"+b.name] = File{HostPath: out}
			}
			t.Logf("step cross-build C: %v", time.Since(begin).Round(time.Millisecond))

			begin = time.Now()
			cfg := PairConfig{Arch: tc.arch, CPU: tc.cpu, Files: files, WorkDir: work, Logf: t.Logf}
			cfg.Guests[1].CPU = tc.cpu1
			cfg.Guests[0].Script = "# run by /init at boot\nboot-pagesize /bin/powercheck pagesize 65536\n"
			pair, err := BootPair(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := pair.Close(); err != nil {
					t.Error(err)
				}
			}()
			t.Logf("step boot pair (initramfs + QEMU + READY): %v", time.Since(begin).Round(time.Millisecond))

			begin = time.Now()
			for _, g := range pair.Guests {
				for _, c := range tc.checks {
					out, err := g.RunNamed(ctx, c.name, c.argv...)
					if err != nil {
						t.Errorf("%s %s: %v", g.Name, c.name, err)
						continue
					}
					t.Logf("%s: %s", g.Name, strings.TrimSpace(string(out)))
				}
				if tc.no32 {
					_, err := g.Run(ctx, "/bin/powercheck32", "pagesize")
					var ee *ExitError
					if !errors.As(err, &ee) || !strings.Contains(ee.Err, "exec format error") {
						t.Errorf("%s: a 32-bit program on a kernel without COMPAT: got %v, want exec format error", g.Name, err)
					} else {
						t.Logf("%s: 32-bit program refused as expected: %s", g.Name, ee.Err)
					}
				}
				// The console (hvc0) is a different channel from the replies
				// (hvc1): its markers may arrive a little later.
				for _, c := range tc.checks {
					wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					if err := g.WaitConsole(wctx, fmt.Sprintf("RESULT %s PASS", c.name)); err != nil {
						t.Errorf("%s: no PASS marker for %s on the console: %v", g.Name, c.name, err)
					}
					cancel()
				}
			}
			t.Logf("step in-guest checks: %v", time.Since(begin).Round(time.Millisecond))

			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			if err := pair.Guests[0].WaitConsole(wctx, "RESULT boot-pagesize PASS"); err != nil {
				t.Errorf("boot script: %v", err)
			}
			wcancel()
			checkBackground(ctx, t, pair.Guests[1])

			begin = time.Now()
			checkTCP(ctx, t, pair, 4<<20)
			t.Logf("step guest-to-guest TCP: %v", time.Since(begin).Round(time.Millisecond))

			begin = time.Now()
			for _, rc := range tc.regdumps {
				out, err := pair.Run(ctx, 0, rc.argv...)
				if err != nil {
					t.Errorf("%s: %v", rc.name, err)
					continue
				}
				rc.check(t, out)
				saveCapture(t, work, rc.name+".txt", captureHeader(pair.Guests[0], rc.argv, out))
			}
			for prefix, argv := range tc.auxv {
				for _, g := range pair.Guests {
					name := prefix + "-" + strings.ToLower(g.CPU)
					out, err := g.Run(ctx, argv...)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					if len(out) == 0 || len(out)%8 != 0 {
						t.Errorf("%s: %d bytes of auxv", name, len(out))
					}
					saveCapture(t, work, name+".bin", out)
				}
			}
			t.Logf("step captures: %v", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// regdumpCase is a register dump to capture and sanity-check.
type regdumpCase struct {
	name     string
	argv     []string
	prstatus int              // NT_PRSTATUS length for this tracee
	order    binary.ByteOrder // the tracee's byte order
	word     int              // the tracee's register width
}

// check verifies the values regs_child in cprog/powercheck.c loaded.
func (rc regdumpCase) check(t *testing.T, out []byte) {
	t.Helper()
	sets, err := ParseRegDump(out)
	if err != nil {
		t.Errorf("%s: %v\n%s", rc.name, err, out)
		return
	}
	byName := map[string]RegSet{}
	for _, s := range sets {
		byName[s.Name] = s
	}
	word := func(b []byte, i int) uint64 {
		if rc.word == 4 {
			return uint64(rc.order.Uint32(b[i*4:]))
		}
		return rc.order.Uint64(b[i*8:])
	}
	pr := byName["NT_PRSTATUS"]
	if len(pr.Data) != rc.prstatus {
		t.Errorf("%s: NT_PRSTATUS is %d bytes, want %d", rc.name, len(pr.Data), rc.prstatus)
		return
	}
	for r := 14; r <= 29; r++ {
		want := uint64(0xA5A50000)<<32 | uint64(r<<8|r)
		if rc.word == 4 {
			want = 0xA5A50000 | uint64(r<<8|r)
		}
		if got := word(pr.Data, r); got != want {
			t.Errorf("%s: gpr%d = %#x, want %#x", rc.name, r, got, want)
		}
	}
	// user_pt_regs after gpr[32]: nip msr orig_gpr3 ctr link xer ccr.
	wantCTR := uint64(0xC7C70000)<<32 | 0x0c0c
	if rc.word == 4 {
		wantCTR = 0xC7C70c0c
	}
	if got := word(pr.Data, 35); got != wantCTR {
		t.Errorf("%s: ctr = %#x, want %#x", rc.name, got, wantCTR)
	}
	if got := word(pr.Data, 38); got != 0x12345678 {
		t.Errorf("%s: ccr = %#x, want 0x12345678", rc.name, got)
	}
	u64 := func(set string, off int) (uint64, bool) {
		d := byName[set].Data
		if len(d) < off+8 {
			t.Errorf("%s: %s is %d bytes, want at least %d", rc.name, set, len(d), off+8)
			return 0, false
		}
		return rc.order.Uint64(d[off:]), true
	}
	for _, spr := range []struct {
		set  string
		want uint64
	}{{"NT_PPC_TAR", 0x7A7A0800}, {"NT_PPC_DSCR", 0x11}, {"NT_PPC_PPR", 0x0008000000000000}} {
		if got, ok := u64(spr.set, 0); ok && got != spr.want {
			t.Errorf("%s: %s = %#x, want %#x", rc.name, spr.set, got, spr.want)
		}
	}
	// NT_PPC_VMX: v0..v31, then VSCR in a quadword, then VRSAVE (u32) at 528.
	if vmx := byName["NT_PPC_VMX"].Data; len(vmx) != 544 {
		t.Errorf("%s: NT_PPC_VMX is %d bytes, want 544", rc.name, len(vmx))
	} else if got := rc.order.Uint32(vmx[528:]); got != 0xA5A5F00D {
		t.Errorf("%s: vrsave = %#x, want 0xa5a5f00d", rc.name, got)
	}
	// NT_PPC_VSX: the second doublewords of vs0..vs31; none for a 32-bit task.
	if rc.word == 8 {
		for n := range 32 {
			if got, ok := u64("NT_PPC_VSX", n*8); ok && got != 0x5A5A000000000000|uint64(n<<8|n) {
				t.Errorf("%s: vs%d low doubleword = %#x", rc.name, n, got)
				break
			}
		}
	} else if byName["NT_PPC_VSX"].Errno == 0 {
		t.Errorf("%s: NT_PPC_VSX readable for a 32-bit task", rc.name)
	}
	fp := byName["NT_PRFPREG"]
	if len(fp.Data) != 33*8 {
		t.Errorf("%s: NT_PRFPREG is %d bytes, want 264", rc.name, len(fp.Data))
	} else if got := rc.order.Uint64(fp.Data[5*8:]); got != 0xF0F0000000000505 {
		t.Errorf("%s: fpr5 = %#x, want 0xf0f0000000000505", rc.name, got)
	}
}

// captureHeader prefixes a dump with where it was captured.
func captureHeader(g *Guest, argv []string, out []byte) []byte {
	hdr := fmt.Sprintf("# captured by e2e/power TestPowerGuests on guest %s (%s, QEMU -cpu %s)\n# command: %s\n",
		g.Name, g.Arch, g.CPU, strings.Join(argv, " "))
	return append([]byte(hdr), out...)
}

// saveCapture writes a guest capture into the work directory and, when
// updating, into testdata/.
func saveCapture(t *testing.T, work, name string, data []byte) {
	t.Helper()
	dirs := []string{work}
	if updateTestdata() {
		dirs = append(dirs, filepath.Join(HarnessDir(), "testdata"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("capture %s: %d bytes", name, len(data))
}

// checkTCP sends n bytes from guest 1 to guest 0 over the QEMU link.
func checkTCP(ctx context.Context, t *testing.T, pair *Pair, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var serveOut []byte
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveOut, serveErr = pair.Guests[0].RunNamed(ctx, "tcp-serve", "@tcp-serve", "7000")
	}()
	sendOut, sendErr := pair.Guests[1].RunNamed(ctx, "tcp-send", "@tcp-send",
		pair.Guests[0].Addr.String()+":7000", fmt.Sprint(n))
	wg.Wait()
	if serveErr != nil || sendErr != nil {
		t.Errorf("guest-to-guest TCP: serve: %v; send: %v", serveErr, sendErr)
		return
	}
	t.Logf("g0: %s", strings.TrimSpace(string(serveOut)))
	t.Logf("g1: %s", strings.TrimSpace(string(sendOut)))
}

// checkBackground starts a process in the background, finds it in /proc,
// kills it and checks /init reaped it.
func checkBackground(ctx context.Context, t *testing.T, g *Guest) {
	t.Helper()
	pid, err := g.Start(ctx, "/tmp/sleep.log", "/bin/powercheck", "sleep", "600")
	if err != nil {
		t.Errorf("start in background: %v", err)
		return
	}
	status, err := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/status", pid))
	if err != nil || !strings.Contains(string(status), "powercheck") {
		t.Errorf("background pid %d not found: %v\n%s", pid, err, status)
		return
	}
	if err := g.Signal(ctx, pid, 9); err != nil {
		t.Errorf("signal: %v", err)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			break // gone: killed and reaped
		}
		if time.Now().After(deadline) {
			t.Errorf("pid %d still in /proc 10 s after SIGKILL (not reaped?)", pid)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s: background pid %d started, found, killed and reaped", g.Name, pid)
}

// TestMixedPair boots a big-endian COMPAT guest beside a ppc64el guest, the
// pair the refusal tests need (endianness, no COMPAT on the destination), and
// checks both are up with their own kernels and can talk.
func TestMixedPair(t *testing.T) {
	needGuests(t)
	needArches(t, ArchPPC64, ArchPPC64LE)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := PairConfig{Arch: ArchPPC64, WorkDir: keptWorkDir(t), Logf: t.Logf}
	cfg.Guests[1].Arch = ArchPPC64LE
	begin := time.Now()
	pair, err := BootPair(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pair.Close(); err != nil {
			t.Error(err)
		}
	}()
	t.Logf("step boot mixed pair: %v", time.Since(begin).Round(time.Millisecond))
	for i, want := range []string{"ppc64 65536", "ppc64le 65536"} {
		out, err := pair.Run(ctx, i, "@hello")
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), want) {
			t.Errorf("guest %d: hello %q, %v; want it to end with %q", i, out, err, want)
		}
	}
	checkTCP(ctx, t, pair, 1<<20)
}

// TestBootFailureCleansUp gives QEMU a CPU model it does not know: BootPair
// must fail fast with ErrGuestExited, and no QEMU may be left behind.
func TestBootFailureCleansUp(t *testing.T) {
	needGuests(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	pair, err := BootPair(ctx, PairConfig{Arch: ArchPPC64, CPU: "NOT-A-CPU", WorkDir: keptWorkDir(t), Logf: t.Logf})
	if err == nil {
		pair.Close()
		t.Fatal("booted with an unknown CPU model")
	}
	if !errors.Is(err, ErrGuestExited) {
		t.Errorf("error %v is not ErrGuestExited", err)
	}
	t.Logf("failed in %v: %.200s", time.Since(begin).Round(time.Millisecond), err)
	out, _ := exec.Command("pgrep", "-f", "qemu-system-ppc64 .*NOT-A-CPU").Output()
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("QEMU left running: pids %s", out)
	}
}
