package powerpc

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/arch"
)

// rsp is a minimal client of the GDB remote serial protocol, enough to
// drive QEMU's gdbstub: read and write one register, single-step.
type rsp struct {
	c net.Conn
	r *bufio.Reader
}

func (g *rsp) cmd(payload string) (string, error) {
	var sum byte
	for i := 0; i < len(payload); i++ {
		sum += payload[i]
	}
	if err := g.c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(g.c, "$%s#%02x", payload, sum); err != nil {
		return "", err
	}
	for {
		b, err := g.r.ReadByte()
		if err != nil {
			return "", err
		}
		switch b {
		case '+':
			continue
		case '-':
			return "", fmt.Errorf("gdbstub refused %q", payload)
		case '$':
			body, err := g.r.ReadString('#')
			if err != nil {
				return "", err
			}
			if _, err := g.r.Discard(2); err != nil { // checksum
				return "", err
			}
			if _, err := g.c.Write([]byte("+")); err != nil {
				return "", err
			}
			return strings.TrimSuffix(body, "#"), nil
		}
	}
}

// QEMU's gdb register numbers for PowerPC without target XML
// (target/ppc/gdbstub.c): r0-r31, f0-f31, then pc, msr, cr.
const (
	gdbPC = 64
	gdbCR = 66
)

func (g *rsp) setReg(n int, v uint64, a *Power) error {
	b := make([]byte, a.WordSize())
	if a.WordSize() == 8 {
		a.ByteOrder().PutUint64(b, v)
	} else {
		a.ByteOrder().PutUint32(b, uint32(v))
	}
	resp, err := g.cmd(fmt.Sprintf("P%x=%s", n, hex.EncodeToString(b)))
	if err == nil && resp != "OK" {
		err = fmt.Errorf("write register %d: %q", n, resp)
	}
	return err
}

func (g *rsp) reg(n int, a *Power) (uint64, error) {
	resp, err := g.cmd(fmt.Sprintf("p%x", n))
	if err != nil {
		return 0, err
	}
	b, err := hex.DecodeString(resp)
	if err != nil {
		return 0, fmt.Errorf("read register %d: %q", n, resp)
	}
	switch len(b) {
	case 8:
		return a.ByteOrder().Uint64(b), nil
	case 4:
		return uint64(a.ByteOrder().Uint32(b)), nil
	}
	return 0, fmt.Errorf("read register %d: %d bytes", n, len(b))
}

// TestGadgetUnderQEMUUser runs system calls from the stub's own gadget
// (code+4, where restore/restore.go takes it) in QEMU's user-mode
// emulator, setting the registers as SetSyscall does through QEMU's
// gdbstub, and decodes the outcome with SyscallResult: the "sc" is in the
// right place and byte order, the PC advances by GadgetPCOffset, and a
// failure shows as CR0.SO with a positive errno in r3.
func TestGadgetUnderQEMUUser(t *testing.T) {
	for _, tc := range []struct {
		a    *Power
		qemu string
	}{
		{PPC64LE, "qemu-ppc64le"},
		{PPC64, "qemu-ppc64"},
		{PPC32, "qemu-ppc"},
	} {
		t.Run(tc.a.Name(), func(t *testing.T) {
			a := tc.a
			tool, err := exec.LookPath(tc.qemu)
			if err != nil {
				t.Skipf("%s not installed (Debian qemu-user): %v", tc.qemu, err)
			}
			const base = 0x10000000
			raw, err := a.StubELF(base, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "stub")
			if err := os.WriteFile(path, raw, 0o755); err != nil {
				t.Fatal(err)
			}
			// A free loopback port for the gdbstub.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, tool, "-g", fmt.Sprint(port), path)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			var c net.Conn
			for deadline := time.Now().Add(20 * time.Second); ; {
				if c, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("gdbstub of %s on port %d: %v", tc.qemu, port, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			defer c.Close()
			g := &rsp{c: c, r: bufio.NewReader(c)}
			// QEMU answers p/P only to a client that has read the target
			// description.
			if resp, err := g.cmd("qXfer:features:read:target.xml:0,ffb"); err != nil || !strings.Contains(resp, "powerpc") {
				t.Fatalf("target description: %q, %v", resp, err)
			}
			if _, err := g.cmd("?"); err != nil {
				t.Fatal(err)
			}
			gadget := uint64(base) + codeAt(a) + stubSCOff
			sys := a.Syscalls()
			for _, call := range []struct {
				name  string
				nr    int
				args  []uint64
				val   uint64
				errno arch.Errno
			}{
				{"getpid", sys.Getpid, nil, uint64(cmd.Process.Pid), 0},
				{"close(-1)", sys.Close, []uint64{^uint64(0)}, 0, 9}, // EBADF
				{"kill(pid, 0)", sys.Kill, []uint64{uint64(cmd.Process.Pid), 0}, 0, 0},
				{"munmap(unaligned)", sys.Munmap, []uint64{base + 1, 4096}, 0, 22}, // EINVAL
			} {
				// Registers as SetSyscall sets them (nip, r0, r3-r8).
				r := mkRegs(t, a, nil)
				r.SetSyscall(gadget, uint64(call.nr), call.args...)
				if err := g.setReg(gdbPC, r.PC(), a); err != nil {
					t.Fatal(err)
				}
				if err := g.setReg(0, r.get(ptR0), a); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 6; i++ {
					if err := g.setReg(3+i, r.Arg(i), a); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := g.cmd("s"); err != nil {
					t.Fatal(err)
				}
				pc, err := g.reg(gdbPC, a)
				if err != nil {
					t.Fatal(err)
				}
				if pc != gadget+uint64(a.GadgetPCOffset()) {
					t.Fatalf("%s: pc %#x after the gadget at %#x", call.name, pc, gadget)
				}
				r3, err := g.reg(3, a)
				if err != nil {
					t.Fatal(err)
				}
				cr, err := g.reg(gdbCR, a)
				if err != nil {
					t.Fatal(err)
				}
				// The exit stop as a ptrace tracer sees it.
				out := mkRegs(t, a, map[int]uint64{ptTrap: trapSC, ptR3: r3, ptCCR: cr})
				val, errno := out.SyscallResult()
				if val != call.val || errno != call.errno {
					t.Errorf("%s: SyscallResult %#x, errno %d; want %#x, %d (r3 %#x cr %#x)",
						call.name, val, errno, call.val, call.errno, r3, cr)
				}
			}
		})
	}
}
