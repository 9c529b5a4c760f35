package compat

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

// Probe measures this host: it reads the agent's own auxv, status and maps,
// and runs small real tests of the kernel features a move depends on (a
// 32-bit executable, soft-dirty, userfaultfd write-protect with
// PAGEMAP_SCAN). It takes a few milliseconds and changes nothing outside
// the calling process. Only a failure to read the basics (auxv, uname,
// status) is an error; a feature whose probe fails is reported absent, and
// why is in ProbeNotes.
func Probe() (*HostCaps, error) {
	h, _, err := ProbeWithNotes()
	return h, err
}

// ProbeNotes explains, per feature, why a probe found it absent (the
// error the kernel gave), for `migrated doctor`.
type ProbeNotes map[string]string

// Feature names used as ProbeNotes keys.
const (
	FeatureCompat32  = "compat32"
	FeatureSoftDirty = "soft-dirty"
	FeatureUffdWP    = "uffd-wp"
	FeatureVDSO      = "vdso"
	FeatureTimeNS    = "timens"
	FeatureClone3    = "clone3-set-tid"
)

// ProbeWithNotes is Probe plus the reasons for every absent feature.
func ProbeWithNotes() (*HostCaps, ProbeNotes, error) {
	notes := ProbeNotes{}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, nil, fmt.Errorf("probe: uname: %w", err)
	}
	arch, endian, err := ArchFromMachine(unix.ByteSliceToString(uts.Machine[:]))
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	h := &HostCaps{
		Arch:          arch,
		Endian:        endian,
		Run64:         true,
		KernelRelease: unix.ByteSliceToString(uts.Release[:]),
	}

	raw, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	order, word, err := AuxvLayout(arch)
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	entries, err := ParseAuxv(raw, order, word)
	if err != nil {
		return nil, nil, fmt.Errorf("probe: /proc/self/auxv: %w", err)
	}
	ac, err := CapsFromAuxv(entries)
	if err != nil {
		return nil, nil, fmt.Errorf("probe: /proc/self/auxv: %w", err)
	}
	h.PageSize, h.HWCap, h.HWCap2 = ac.PageSize, ac.HWCap, ac.HWCap2
	if ac.PlatformAddr != 0 {
		h.Platform = readCString(ac.PlatformAddr, 64)
	}

	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	capEff, err := ParseCapEff(status)
	if err != nil {
		return nil, nil, fmt.Errorf("probe: /proc/self/status: %w", err)
	}
	h.CapSysResource = HasCap(capEff, CAP_SYS_RESOURCE)
	h.CapCheckpointRestore = HasCap(capEff, CAP_CHECKPOINT_RESTORE) || HasCap(capEff, CAP_SYS_ADMIN)

	if v, err := probeVDSO(); err != nil {
		notes[FeatureVDSO] = err.Error()
	} else {
		h.VDSO = v
	}

	if err := probeCompat32(); err != nil {
		notes[FeatureCompat32] = err.Error()
	} else {
		h.Compat32 = true
	}

	if err := probeUffdWP(int(h.PageSize)); err != nil {
		notes[FeatureUffdWP] = err.Error()
	} else {
		h.DirtyTrackers = append(h.DirtyTrackers, TrackerUffdWP)
	}
	if err := probeSoftDirty(int(h.PageSize)); err != nil {
		notes[FeatureSoftDirty] = err.Error()
	} else {
		h.DirtyTrackers = append(h.DirtyTrackers, TrackerSoftDirty)
	}
	h.DirtyTrackers = append(h.DirtyTrackers, TrackerHash)

	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		notes[FeatureTimeNS] = "no /proc/self/ns/time: kernel without CONFIG_TIME_NS"
	} else {
		h.TimeNS = true
	}

	// clone3 with set_tid: Linux 5.5, and CAP_CHECKPOINT_RESTORE (5.9) or
	// CAP_SYS_ADMIN in the PID namespace that owns the ids.
	kv, err := ParseKernelRelease(h.KernelRelease)
	switch {
	case err != nil:
		notes[FeatureClone3] = err.Error()
	case !kv.AtLeast(5, 5):
		notes[FeatureClone3] = fmt.Sprintf("kernel %s is older than 5.5", h.KernelRelease)
	case !h.CapCheckpointRestore:
		notes[FeatureClone3] = "the agent has neither CAP_CHECKPOINT_RESTORE nor CAP_SYS_ADMIN"
	default:
		h.Clone3SetTID = true
	}

	h.XStateFeatures = xstateFeatures()
	h.Regsets = regsetsFor(h.Arch, h.HWCap, h.HWCap2, h.XStateFeatures)
	return h, notes, nil
}

// readCString reads a NUL-terminated string of this process at addr
// through /proc/self/mem (the address comes from the kernel, not from Go).
func readCString(addr uint64, max int) string {
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, max)
	n, _ := f.ReadAt(buf, int64(addr))
	buf = buf[:n]
	if i := strings.IndexByte(string(buf), 0); i >= 0 {
		return string(buf[:i])
	}
	return ""
}

// probeVDSO hashes this process's [vdso] bytes and records the layout of
// the vDSO-related mappings around it.
func probeVDSO() (*image.VDSOIdentity, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	entries, err := ParseMaps(maps)
	if err != nil {
		return nil, err
	}
	start, size, layout, err := VDSOLayout(entries)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, int64(start)); err != nil {
		return nil, fmt.Errorf("read [vdso] at %#x: %w", start, err)
	}
	sum := sha256.Sum256(buf)
	return &image.VDSOIdentity{Sha256: sum[:], VdsoSize: size, Layout: layout}, nil
}

// ErrNoCompat32 means the kernel refused to run a 32-bit executable.
var ErrNoCompat32 = errors.New("kernel does not run 32-bit executables")

// probeCompat32 runs a generated 32-bit executable of the host's compat
// arch (i386 on amd64, ppc32 on ppc64) that exits with a known status.
func probeCompat32() error {
	elf := compat32ProbeELF()
	if elf == nil {
		return fmt.Errorf("%w: no 32-bit probe for %s", ErrNoCompat32, runtime.GOARCH)
	}
	return runProbeELF(elf, compat32ProbeStatus)
}

// runProbeELF executes elf from a memfd and checks its exit status.
func runProbeELF(elf []byte, want int) error {
	fd, err := unix.MemfdCreate("migrated-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "migrated-probe")
	defer f.Close()
	if _, err := f.Write(elf); err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	path := fmt.Sprintf("/proc/self/fd/%d", fd)
	p, err := os.StartProcess(path, []string{"migrated-probe32"}, &os.ProcAttr{})
	if err != nil {
		if errors.Is(err, unix.ENOEXEC) {
			return fmt.Errorf("%w: exec of a generated %s ELF: %v", ErrNoCompat32, compat32Name, unix.ENOEXEC)
		}
		return fmt.Errorf("exec 32-bit probe: %w", err)
	}
	st, err := p.Wait()
	if err != nil {
		return fmt.Errorf("wait for 32-bit probe: %w", err)
	}
	if st.ExitCode() != want {
		return fmt.Errorf("%w: probe ended with %v, want exit %d", ErrNoCompat32, st, want)
	}
	return nil
}

// probeSoftDirty checks that a page written after clear_refs 4 shows
// bit 55 (soft-dirty) in pagemap, and is clear before the write.
func probeSoftDirty(pageSize int) error {
	mem, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	if err := os.WriteFile("/proc/self/clear_refs", []byte("4"), 0); err != nil {
		return fmt.Errorf("clear_refs 4: %w", err)
	}
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	before, err := pagemapEntry(addr, pageSize)
	if err != nil {
		return err
	}
	mem[0] = 2
	after, err := pagemapEntry(addr, pageSize)
	if err != nil {
		return err
	}
	const softDirty = 1 << 55
	if before&softDirty != 0 || after&softDirty == 0 {
		return fmt.Errorf("pagemap bit 55 not set by a write after clear_refs 4 (before %#x, after %#x): kernel without CONFIG_MEM_SOFT_DIRTY", before, after)
	}
	return nil
}

func pagemapEntry(addr uint64, pageSize int) (uint64, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(addr/uint64(pageSize))*8); err != nil {
		return 0, fmt.Errorf("read pagemap: %w", err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}
