//go:build linux && amd64

package compat

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

// These tests read register sets from real processes on this machine, the
// way the checkpoint code will (PTRACE_SEIZE, PTRACE_INTERRUPT,
// PTRACE_GETREGSET), and feed them to the decoders and to Capabilities. The
// ptrace here is test scaffolding: package compat itself never traces.

// i386Workload computes with the x87/SSE units and sleeps, so a freeze finds
// it in a system call with live FP state.
const i386Workload = `#include <stdio.h>
#include <unistd.h>
volatile double acc = 1.0;
int main(void) {
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		for (int i = 0; i < 1000; i++)
			acc = acc * 1.0000001 + 0.5;
		usleep(1000);
	}
}
`

// frozen is a child process seized and stopped by the calling OS thread.
type frozen struct {
	cmd *exec.Cmd
	pid int
}

// startFrozen starts path, waits for its "ready" line, seizes and stops it.
// The caller's goroutine stays locked to its OS thread until the test ends:
// every ptrace request for a tracee must come from the tracer thread.
func startFrozen(t *testing.T, path string, args ...string) *frozen {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	cmd := exec.Command(path, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.ENOEXEC) {
			t.Skipf("this kernel does not run %s: execve returns ENOEXEC (IA32 emulation off? see dmesg)", path)
		}
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if path != "/bin/sleep" {
		ready := make(chan error, 1)
		go func() {
			line, err := bufio.NewReader(out).ReadString('\n')
			if err == nil && line != "ready\n" {
				err = os.ErrInvalid
			}
			ready <- err
		}()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("%s did not get ready: %v", path, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not get ready in 10 s", path)
		}
	} else {
		time.Sleep(50 * time.Millisecond) // let it reach its nanosleep
	}
	pid := cmd.Process.Pid
	if err := unix.PtraceSeize(pid); err != nil {
		t.Skipf("PTRACE_SEIZE not permitted here: %v", err)
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		t.Fatalf("PTRACE_INTERRUPT: %v", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		t.Fatalf("wait for the stop: %v (status %#x)", err, ws)
	}
	return &frozen{cmd: cmd, pid: pid}
}

func (f *frozen) getRegset(t *testing.T, nt uint32) []byte {
	t.Helper()
	buf := make([]byte, 16384)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(f.pid), uintptr(nt),
		uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
		t.Fatalf("PTRACE_GETREGSET %#x: %v", nt, e)
	}
	return buf[:iov.Len]
}

func (f *frozen) setRegset(t *testing.T, nt uint32, data []byte) {
	t.Helper()
	iov := unix.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(f.pid), uintptr(nt),
		uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
		t.Fatalf("PTRACE_SETREGSET %#x: %v", nt, e)
	}
}

// mapping finds the /proc/PID/maps line containing addr.
func (f *frozen) mapping(t *testing.T, addr uint64) string {
	t.Helper()
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(f.pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		l, _ := strconv.ParseUint(lo, 16, 64)
		h, _ := strconv.ParseUint(hi, 16, 64)
		if addr >= l && addr < h {
			return line
		}
	}
	return ""
}

// cpuFlags is the flags line of /proc/cpuinfo.
func cpuFlags(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skipf("no /proc/cpuinfo: %v", err)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	return flags
}

// checkXCR0 compares the XCR0 read from a task's xsave area with what the
// kernel tells /proc/cpuinfo it enabled.
func checkXCR0(t *testing.T, xcr0 uint64) {
	t.Helper()
	flags := cpuFlags(t)
	for _, c := range []struct {
		flag string
		bits uint64
	}{
		{"fpu", XFeatureFP}, {"sse", XFeatureSSE}, {"avx", XFeatureYMM},
		{"avx512f", XFeatureAVX512}, {"ospke", XFeaturePKRU},
	} {
		got := xcr0&c.bits == c.bits
		if got != flags[c.flag] {
			t.Errorf("XCR0 %#x: components %#x present=%t, but /proc/cpuinfo flag %q present=%t", xcr0, c.bits, got, c.flag, flags[c.flag])
		}
	}
}

func buildI386(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed (Debian packages gcc, gcc-multilib)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "w.c")
	if err := os.WriteFile(src, []byte(i386Workload), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "w32")
	if out, err := exec.Command(gcc, "-m32", "-static", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("gcc -m32 cannot build here (Debian package gcc-multilib): %v\n%s", err, out)
	}
	return bin
}

// TestCaptureI386 freezes a real i386 program and checks its register sets
// as a 64-bit tracer sees them: sizes, decoded values, a round trip through
// the kernel (SETREGSET of the re-encoded bytes reads back the same), and
// the capabilities they show.
func TestCaptureI386(t *testing.T) {
	f := startFrozen(t, buildI386(t))
	pr := f.getRegset(t, unix.NT_PRSTATUS)
	fp := f.getRegset(t, unix.NT_PRFPREG)
	xs := f.getRegset(t, unix.NT_X86_XSTATE)
	if len(pr) != SizeI386PRStatus || len(fp) != SizeI387FPRegs {
		t.Fatalf("NT_PRSTATUS %d bytes, NT_PRFPREG %d: want %d and %d for an i386 tracee", len(pr), len(fp), SizeI386PRStatus, SizeI387FPRegs)
	}
	r, err := DecodeI386Regs(pr)
	if err != nil {
		t.Fatal(err)
	}
	// Selectors of a 32-bit task on x86-64: __USER32_CS and __USER_DS
	// (arch/x86/include/asm/segment.h).
	if r.CS != 0x23 || r.SS != 0x2b {
		t.Errorf("cs %#x ss %#x, want 0x23 0x2b", r.CS, r.SS)
	}
	if r.EFLAGS&0x202 != 0x202 {
		t.Errorf("eflags %#x: reserved bit 1 and IF must be set", r.EFLAGS)
	}
	if m := f.mapping(t, uint64(r.EIP)); !strings.Contains(m, " r-xp ") {
		t.Errorf("eip %#x is not in an executable mapping: %q", r.EIP, m)
	}
	if m := f.mapping(t, uint64(r.ESP)); !strings.Contains(m, "[stack]") {
		t.Errorf("esp %#x is not in [stack]: %q", r.ESP, m)
	}
	if cpu := r.CPU(); cpu.Pc != uint64(r.EIP) || cpu.Sp != uint64(r.ESP) {
		t.Errorf("CPU() = %+v", cpu)
	}
	x87, err := DecodeI387Regs(fp)
	if err != nil {
		t.Fatal(err)
	}
	if x87.CWD&0xffff != 0x037f {
		t.Errorf("x87 control word %#x, want the Linux default 0x37f", x87.CWD)
	}
	if !bytes.Equal(r.Encode(), pr) || !bytes.Equal(x87.Encode(), fp) {
		t.Fatal("encode(decode(x)) != x")
	}
	f.setRegset(t, unix.NT_PRSTATUS, r.Encode())
	f.setRegset(t, unix.NT_PRFPREG, x87.Encode())
	if again := f.getRegset(t, unix.NT_PRSTATUS); !bytes.Equal(again, pr) {
		t.Errorf("NT_PRSTATUS after SETREGSET differs:\n% x\n% x", pr, again)
	}
	if again := f.getRegset(t, unix.NT_PRFPREG); !bytes.Equal(again, fp) {
		t.Errorf("NT_PRFPREG after SETREGSET differs")
	}

	caps, xcr0, err := Capabilities(image.Arch_ARCH_I386, []*image.Regset{
		rs(unix.NT_PRSTATUS, pr), rs(unix.NT_PRFPREG, fp), rs(unix.NT_X86_XSTATE, xs)})
	if err != nil {
		t.Fatal(err)
	}
	if caps&bit(image.Cap_CAP_FPU) == 0 {
		t.Errorf("caps %#x: no FPU", caps)
	}
	checkXCR0(t, xcr0)

	if os.Getenv("MIGRATED_UPDATE_GOLDEN") != "" {
		writeGoldenFile(t, "i386-prstatus", pr, fmtStruct(r))
		writeGoldenFile(t, "i386-fpregs", fp, fmtStruct(x87))
	}
}

// TestCaptureAMD64Capabilities reads a 64-bit task's register sets and checks
// what Capabilities makes of them against /proc/cpuinfo.
func TestCaptureAMD64Capabilities(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil || sleep != "/bin/sleep" && sleep != "/usr/bin/sleep" {
		t.Skip("no sleep binary")
	}
	f := startFrozen(t, "/bin/sleep", "30")
	pr := f.getRegset(t, unix.NT_PRSTATUS)
	fp := f.getRegset(t, unix.NT_PRFPREG)
	xs := f.getRegset(t, unix.NT_X86_XSTATE)
	if len(pr) != SizeAMD64PRStatus || len(fp) != SizeAMD64FPRegs {
		t.Fatalf("NT_PRSTATUS %d bytes, NT_PRFPREG %d", len(pr), len(fp))
	}
	caps, xcr0, err := Capabilities(image.Arch_ARCH_AMD64, []*image.Regset{
		rs(unix.NT_PRSTATUS, pr), rs(unix.NT_PRFPREG, fp), rs(unix.NT_X86_XSTATE, xs)})
	if err != nil {
		t.Fatal(err)
	}
	if caps&bit(image.Cap_CAP_FPU) == 0 {
		t.Errorf("caps %#x: no FPU", caps)
	}
	checkXCR0(t, xcr0)
	// Linux starts every task with PKRU 0x55555554, not the init value:
	// on a host with protection keys the PKRU component is always live.
	if cpuFlags(t)["ospke"] && caps&bit(image.Cap_CAP_PKEY) == 0 {
		t.Errorf("caps %#x: no PKEY on an ospke host", caps)
	}
	// A task that moves between two hosts like this one is accepted.
	h := &HostCaps{Arch: image.Arch_ARCH_AMD64, Endian: image.Endian_ENDIAN_LITTLE, PageSize: uint64(os.Getpagesize()),
		Run64: true, Compat32: true, Clone3SetTID: true, XStateFeatures: xcr0, VDSO: vdso(1)}
	m := &image.Manifest{Header: &image.Header{FormatVersion: 1, Arch: image.Arch_ARCH_AMD64, Endian: image.Endian_ENDIAN_LITTLE,
		WordSize: 8, Abi: image.ABI_ABI_SYSV_X86_64, PageSize: uint64(os.Getpagesize()), Vdso: vdso(1)},
		Capabilities: caps, XstateFeatures: xcr0, Tids: []int32{int32(f.pid)}}
	if v := Decide(m, h); v.GetKind() != image.Verdict_ACCEPT {
		t.Errorf("same-host move: %s", NewReport(v))
	}
}

// TestNewManifestLive builds the manifest of a real frozen 64-bit task from
// what the checkpoint code reads (auxv, register sets, the vDSO bytes) and
// decides it against this host as Probe sees it: a task moving between two
// hosts like this one is accepted.
func TestNewManifestLive(t *testing.T) {
	h, notes, err := ProbeWithNotes()
	if err != nil {
		t.Skipf("probe this host: %v (%v)", err, notes)
	}
	f := startFrozen(t, "/bin/sleep", "30")
	proc := "/proc/" + strconv.Itoa(f.pid)
	auxv, err := os.ReadFile(proc + "/auxv")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile(proc + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseMaps(maps)
	if err != nil {
		t.Fatal(err)
	}
	start, size, layout, err := VDSOLayout(entries)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(proc + "/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	code := make([]byte, size)
	if _, err := mem.ReadAt(code, int64(start)); err != nil {
		t.Fatalf("read [vdso]: %v", err)
	}
	sum := sha256.Sum256(code)
	task := &image.Task{
		Header: &image.Header{FormatVersion: 1, Arch: image.Arch_ARCH_AMD64, Abi: image.ABI_ABI_SYSV_X86_64,
			Vdso: &image.VDSOIdentity{Sha256: sum[:], VdsoSize: size, Layout: layout}},
		Threads: []*image.Thread{{Tid: int32(f.pid), Regsets: []*image.Regset{
			rs(unix.NT_PRSTATUS, f.getRegset(t, unix.NT_PRSTATUS)),
			rs(unix.NT_PRFPREG, f.getRegset(t, unix.NT_PRFPREG)),
			rs(unix.NT_X86_XSTATE, f.getRegset(t, unix.NT_X86_XSTATE)),
		}}},
		Mm: &image.MM{Auxv: auxv},
	}
	m, err := NewManifest(task)
	if err != nil {
		t.Fatal(err)
	}
	if m.GetHwcap() != h.HWCap || m.GetHwcap2() != h.HWCap2 || m.GetHeader().GetPageSize() != h.PageSize {
		t.Errorf("task hwcap %#x/%#x page %d, host %#x/%#x page %d: a task started here sees the host's",
			m.GetHwcap(), m.GetHwcap2(), m.GetHeader().GetPageSize(), h.HWCap, h.HWCap2, h.PageSize)
	}
	if m.GetXstateFeatures() != h.XStateFeatures {
		t.Errorf("task XCR0 %#x, host XCR0 %#x", m.GetXstateFeatures(), h.XStateFeatures)
	}
	if v := Decide(m, h); v.GetKind() != image.Verdict_ACCEPT {
		t.Errorf("a task of this host toward this host:\n%s", NewReport(v))
	}
	// The same task toward this host as it would be without IA32
	// emulation, set_tid or AVX-512 (a test override narrows HostCaps).
	narrow := *h
	narrow.XStateFeatures &^= XFeatureAVX512
	narrow.Clone3SetTID = false
	v := Decide(m, &narrow)
	want := []string{ReasonPIDNamespace}
	if h.XStateFeatures&XFeatureAVX512 != 0 {
		want = append(want, ReasonXState)
	}
	if !slices.Equal(sorted(Codes(v)), sorted(want)) {
		t.Errorf("narrowed host: %s, want %v", NewReport(v), want)
	}
}
