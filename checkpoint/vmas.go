package checkpoint

import (
	"fmt"
	"os"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/internal/procfs"
)

// readMaps reads /proc/PID/maps. Not smaps: smaps walks every page table
// to count RSS, tens of milliseconds for a GiB, and it was read with the
// task frozen. The one VmFlags bit the engine needs, growsdown, is the
// main thread's [stack]; other MAP_GROWSDOWN mappings lose the flag (they
// are restored as plain mappings of the same extent).
func readMaps(pid int) ([]procfs.MapEntry, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/maps: %w", pid, err)
	}
	maps, err := procfs.ParseMaps(b, false)
	if err != nil {
		return nil, err
	}
	for i := range maps {
		if maps[i].Path == "[stack]" {
			maps[i].Flags = append(maps[i].Flags, "gd")
		}
	}
	return maps, nil
}

// VMAs reads the task's VMA list from /proc/PID/maps. It does not need the
// task frozen (pre-copy re-reads it every round while the task runs).
func VMAs(pid int) ([]*image.VMA, error) {
	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	out := make([]*image.VMA, 0, len(maps))
	for _, m := range maps {
		v, err := vmaOf(pid, m)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Inject starts injecting system calls into the frozen task's leader, from
// the syscall instruction in its [vdso]. End the injector before Thaw.
func (f *Frozen) Inject() (*inject.Injector, error) {
	vmas, err := VMAs(f.PID)
	if err != nil {
		return nil, err
	}
	g, err := findGadget(f.PID, f.Arch, vmas)
	if err != nil {
		return nil, err
	}
	return inject.Begin(f.Threads[0], g)
}
