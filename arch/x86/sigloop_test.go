package x86

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSigactionLoopDisassembly checks the loops that read every signal
// action (arch.SigactionLooper) as objdump reads them, and that the trap PC
// each reports is right after its final int3.
func TestSigactionLoopDisassembly(t *testing.T) {
	tool, err := exec.LookPath("objdump")
	if err != nil {
		t.Skipf("objdump not installed (binutils): %v", err)
	}
	for _, tc := range []struct {
		name    string
		loop    func(bool) ([]byte, uint64)
		set     bool
		machine string
		want    []string
	}{
		{"amd64", AMD64{}.SigactionLoop, false, "i386:x86-64", []string{
			"mov %r15d,%eax", "mov %r13d,%edi", "xor %esi,%esi", "mov %r12,%rdx", "mov $0x8,%r10d", "syscall",
			"mov %rax,0x20(%r12)", "add $0x30,%r12", "inc %r13d", "cmp %r14d,%r13d", "jne 0x0", "int3"}},
		{"amd64-set", AMD64{}.SigactionLoop, true, "i386:x86-64", []string{
			"mov %r15d,%eax", "mov %r13d,%edi", "mov %r12,%rsi", "xor %edx,%edx", "mov $0x8,%r10d", "syscall",
			"mov %rax,0x20(%r12)", "add $0x30,%r12", "inc %r13d", "cmp %r14d,%r13d", "jne 0x0", "int3"}},
		{"i386-set", I386{}.SigactionLoop, true, "i386", []string{
			"mov $0xae,%eax", "mov %edi,%ebx", "mov %ebp,%ecx", "xor %edx,%edx", "mov $0x8,%esi", "int $0x80",
			"mov %eax,0x20(%ebp)", "add $0x30,%ebp", "inc %edi", "cmp $0x41,%edi", "jne 0x0", "int3"}},
		{"i386", I386{}.SigactionLoop, false, "i386", []string{
			"mov $0xae,%eax", "mov %edi,%ebx", "xor %ecx,%ecx", "mov %ebp,%edx", "mov $0x8,%esi", "int $0x80",
			"mov %eax,0x20(%ebp)", "add $0x30,%ebp", "inc %edi", "cmp $0x41,%edi", "jne 0x0", "int3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, trapPC := tc.loop(tc.set)
			bin := filepath.Join(t.TempDir(), "loop.bin")
			if err := os.WriteFile(bin, code, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(tool, "-D", "-b", "binary", "-m", tc.machine, bin).CombinedOutput()
			if err != nil {
				t.Fatalf("objdump: %v\n%s", err, out)
			}
			re := regexp.MustCompile(`(?m)^\s+[0-9a-f]+:\s+(?:[0-9a-f]{2} )+\s*(\S.*)$`)
			var got []string
			for _, m := range re.FindAllStringSubmatch(string(out), -1) {
				got = append(got, strings.Join(strings.Fields(m[1]), " "))
			}
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("disassembly\n%q\nwant\n%q\n%s", got, tc.want, out)
			}
			if trapPC != uint64(len(code)) || code[len(code)-1] != 0xcc {
				t.Errorf("trap PC %#x for %d bytes ending in %#x", trapPC, len(code), code[len(code)-1])
			}
		})
	}
}
