package restore

import (
	"fmt"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/arch/powerpc"
	"github.com/migrated/migrated/inject"
	"golang.org/x/sys/unix"
)

// markVectorsUsed runs, on powerpc, one vector instruction in each thread
// whose image has VSX or VMX state (powerpc.VectorUseCode), so that the
// kernel counts those registers as in use by the thread, as it did for the
// original: PTRACE_SETREGSET alone leaves thread.used_vsr and used_vr
// clear, and such a thread loses the low halves of vs0-vs31 at the first
// signal handler it returns from before it runs a VSX instruction itself
// (seen in the POWER guests: vecthreads lost vs20 after a move). It runs
// before setRegisters, which then installs the image's values.
func (p *Process) markVectorsUsed(ths []*threadBuild) error {
	switch p.Arch.Kind() {
	case arch.KindPPC64LE, arch.KindPPC64, arch.KindPPC32:
	default:
		return nil
	}
	offs := make([]int, len(ths))
	needed := false
	for i, tb := range ths {
		offs[i] = -1
		for _, rs := range tb.img.Regsets {
			switch {
			case rs.NoteType == arch.NT_PPC_VSX:
				offs[i] = powerpc.VSXUseOffset
			case rs.NoteType == arch.NT_PPC_VMX && offs[i] < 0:
				offs[i] = powerpc.VMXUseOffset
			}
		}
		needed = needed || offs[i] >= 0
	}
	if !needed {
		return nil
	}
	sc := p.sc()
	page, err := p.call("mmap (vector gadgets)", sc.Mmap, 0, p.PageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return err
	}
	if err := inject.WriteMem(p.PID, page, powerpc.VectorUseCode(p.Arch.ByteOrder())); err != nil {
		return fmt.Errorf("vector gadgets: %w", err)
	}
	if _, err := p.call("mprotect (vector gadgets)", sc.Mprotect, page, p.PageSize, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	for i, tb := range ths {
		if offs[i] < 0 {
			continue
		}
		g := tb.in.Gadget()
		tb.in.SetGadget(page + uint64(offs[i]))
		_, err := tb.in.Call("getpid (vector state in use)", sc.Getpid)
		tb.in.SetGadget(g)
		if err != nil {
			return fmt.Errorf("thread %d: %w", tb.img.Tid, err)
		}
	}
	_, err = p.call("munmap (vector gadgets)", sc.Munmap, page, p.PageSize)
	return err
}
