package compat

// Pure parsers behind Probe: each takes the bytes of one kernel interface
// (/proc/self/auxv, /proc/self/status, /proc/self/maps, osrelease) and
// returns what HostCaps needs, so that they can be tested on samples
// captured on other hosts (testdata/probe/) and fuzzed. Probe (probe_linux.go)
// reads the live files and runs the kernel feature probes.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/migrated/migrated/image"
)

// Auxiliary vector entry types, from include/uapi/linux/auxvec.h and
// arch/powerpc/include/uapi/asm/auxvec.h.
const (
	AT_NULL          = 0
	AT_PAGESZ        = 6
	AT_PLATFORM      = 15
	AT_HWCAP         = 16
	AT_BASE_PLATFORM = 24
	AT_HWCAP2        = 26
	AT_SYSINFO_EHDR  = 33
)

// Capability bit numbers in CapEff, from include/uapi/linux/capability.h.
const (
	CAP_SYS_ADMIN          = 21
	CAP_SYS_PTRACE         = 19
	CAP_SYS_RESOURCE       = 24
	CAP_CHECKPOINT_RESTORE = 40
)

// ErrMalformed is wrapped by every parser error: the input is not what the
// kernel writes.
var ErrMalformed = errors.New("malformed kernel data")

// AuxvEntry is one (type, value) pair of an auxiliary vector.
type AuxvEntry struct {
	Type  uint64
	Value uint64
}

// ParseAuxv decodes an auxiliary vector as the kernel writes it to
// /proc/PID/auxv: pairs of native words (wordSize 4 or 8 bytes, in order),
// terminated by AT_NULL. The terminator is not returned. Bytes after the
// terminator are ignored (the kernel pads the saved vector with zeros).
func ParseAuxv(b []byte, order binary.ByteOrder, wordSize int) ([]AuxvEntry, error) {
	if wordSize != 4 && wordSize != 8 {
		return nil, fmt.Errorf("auxv: word size %d: %w", wordSize, ErrMalformed)
	}
	word := func(p []byte) uint64 {
		if wordSize == 4 {
			return uint64(order.Uint32(p))
		}
		return order.Uint64(p)
	}
	var out []AuxvEntry
	for off := 0; ; off += 2 * wordSize {
		if off+2*wordSize > len(b) {
			return nil, fmt.Errorf("auxv: no AT_NULL in %d bytes: %w", len(b), ErrMalformed)
		}
		e := AuxvEntry{Type: word(b[off:]), Value: word(b[off+wordSize:])}
		if e.Type == AT_NULL {
			return out, nil
		}
		out = append(out, e)
	}
}

// AuxvCaps is what HostCaps takes from an auxiliary vector.
type AuxvCaps struct {
	PageSize uint64
	HWCap    uint64
	HWCap2   uint64
	// PlatformAddr is the address of the AT_PLATFORM string in the
	// process that owns the vector (0 if absent): the string itself is
	// read from that process's memory.
	PlatformAddr uint64
	// VDSOBase is AT_SYSINFO_EHDR, the start of [vdso] (0 if absent).
	VDSOBase uint64
}

// CapsFromAuxv picks the entries HostCaps needs. AT_PAGESZ is required.
func CapsFromAuxv(entries []AuxvEntry) (AuxvCaps, error) {
	var c AuxvCaps
	for _, e := range entries {
		switch e.Type {
		case AT_PAGESZ:
			c.PageSize = e.Value
		case AT_HWCAP:
			c.HWCap = e.Value
		case AT_HWCAP2:
			c.HWCap2 = e.Value
		case AT_PLATFORM:
			c.PlatformAddr = e.Value
		case AT_SYSINFO_EHDR:
			c.VDSOBase = e.Value
		}
	}
	if c.PageSize == 0 || c.PageSize&(c.PageSize-1) != 0 {
		return c, fmt.Errorf("auxv: AT_PAGESZ %d: %w", c.PageSize, ErrMalformed)
	}
	return c, nil
}

// ParseCapEff returns the effective capability set from the text of
// /proc/PID/status.
func ParseCapEff(status []byte) (uint64, error) {
	v, err := statusField(status, "CapEff")
	if err != nil {
		return 0, err
	}
	c, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("status: CapEff %q: %w", v, ErrMalformed)
	}
	return c, nil
}

// ParseStatusUIDs returns the real, effective, saved and filesystem uids
// from the text of /proc/PID/status.
func ParseStatusUIDs(status []byte) ([4]uint32, error) {
	var ids [4]uint32
	v, err := statusField(status, "Uid")
	if err != nil {
		return ids, err
	}
	f := strings.Fields(v)
	if len(f) != 4 {
		return ids, fmt.Errorf("status: Uid %q: %w", v, ErrMalformed)
	}
	for i, s := range f {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return ids, fmt.Errorf("status: Uid %q: %w", v, ErrMalformed)
		}
		ids[i] = uint32(n)
	}
	return ids, nil
}

func statusField(status []byte, key string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("status: no %s line: %w", key, ErrMalformed)
}

// HasCap reports whether capability bit n is set in a CapEff mask.
func HasCap(capEff uint64, n uint) bool { return n < 64 && capEff&(1<<n) != 0 }

// MapsEntry is one line of /proc/PID/maps, reduced to what the probe needs.
type MapsEntry struct {
	Start, End uint64
	Perms      string
	Name       string
}

// ParseMaps decodes the text of /proc/PID/maps.
func ParseMaps(maps []byte) ([]MapsEntry, error) {
	var out []MapsEntry
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		// start-end perms offset dev inode [name]
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("maps: line %q: %w", line, ErrMalformed)
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps: range %q: %w", f[0], ErrMalformed)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end < start || len(f[1]) != 4 {
			return nil, fmt.Errorf("maps: line %q: %w", line, ErrMalformed)
		}
		e := MapsEntry{Start: start, End: end, Perms: f[1]}
		if len(f) >= 6 {
			e.Name = strings.Join(f[5:], " ")
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("maps: %w", err)
	}
	return out, nil
}

// vdsoMappingNames are the special mappings that move together with the
// vDSO (three on amd64 6.x: [vvar], [vvar_vclock], [vdso]).
var vdsoMappingNames = map[string]bool{"[vdso]": true, "[vvar]": true, "[vvar_vclock]": true}

// ErrNoVDSO: the process has no [vdso] mapping (vdso=0 on the kernel command line).
var ErrNoVDSO = errors.New("no [vdso] mapping")

// VDSOLayout finds [vdso] in a maps listing and returns its range and the
// layout of the vDSO-related mappings relative to its start, in address order.
func VDSOLayout(maps []MapsEntry) (start, size uint64, layout []*image.SpecialMapping, err error) {
	found := false
	for _, m := range maps {
		if m.Name == "[vdso]" {
			if found {
				return 0, 0, nil, fmt.Errorf("maps: two [vdso] mappings: %w", ErrMalformed)
			}
			start, size, found = m.Start, m.End-m.Start, true
		}
	}
	if !found {
		return 0, 0, nil, ErrNoVDSO
	}
	for _, m := range maps {
		if vdsoMappingNames[m.Name] {
			layout = append(layout, &image.SpecialMapping{
				Name:   m.Name,
				Offset: int64(m.Start - start),
				Size:   m.End - m.Start,
			})
		}
	}
	return start, size, layout, nil
}

// KernelVersion is the numeric prefix of a kernel release ("6.18.0-rc1" -> 6.18.0).
type KernelVersion struct{ Major, Minor, Patch int }

// AtLeast reports whether v >= major.minor.
func (v KernelVersion) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// ParseKernelRelease reads the version numbers at the start of a kernel
// release string (uname -r, /proc/sys/kernel/osrelease).
func ParseKernelRelease(release string) (KernelVersion, error) {
	var v KernelVersion
	rest := strings.TrimSpace(release)
	nums := [3]*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range nums {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 || j > 6 {
			if i == 2 { // "6.18" or "6.18-rc1": no patch level
				break
			}
			return v, fmt.Errorf("kernel release %q: %w", release, ErrMalformed)
		}
		*p, _ = strconv.Atoi(rest[:j])
		rest = rest[j:]
		if i < 2 {
			if !strings.HasPrefix(rest, ".") {
				if i == 1 {
					break
				}
				return v, fmt.Errorf("kernel release %q: %w", release, ErrMalformed)
			}
			rest = rest[1:]
		}
	}
	return v, nil
}

// ArchFromMachine maps uname's machine field to the host arch and byte order.
func ArchFromMachine(machine string) (image.Arch, image.Endian, error) {
	switch strings.TrimSpace(machine) {
	case "x86_64":
		return image.Arch_ARCH_AMD64, image.Endian_ENDIAN_LITTLE, nil
	case "ppc64le":
		return image.Arch_ARCH_PPC64LE, image.Endian_ENDIAN_LITTLE, nil
	case "ppc64":
		return image.Arch_ARCH_PPC64, image.Endian_ENDIAN_BIG, nil
	}
	return image.Arch_ARCH_UNSPECIFIED, image.Endian_ENDIAN_UNSPECIFIED,
		fmt.Errorf("machine %q: unsupported host arch", machine)
}

// AuxvLayout returns the byte order and word size of the auxiliary vector
// of a native (64-bit) task on a host of the given arch.
func AuxvLayout(a image.Arch) (binary.ByteOrder, int, error) {
	switch a {
	case image.Arch_ARCH_AMD64, image.Arch_ARCH_PPC64LE:
		return binary.LittleEndian, 8, nil
	case image.Arch_ARCH_PPC64:
		return binary.BigEndian, 8, nil
	case image.Arch_ARCH_I386:
		return binary.LittleEndian, 4, nil
	case image.Arch_ARCH_PPC32:
		return binary.BigEndian, 4, nil
	}
	return nil, 0, fmt.Errorf("auxv layout of arch %v: unknown", a)
}

// Dirty tracker names in HostCaps.DirtyTrackers.
const (
	TrackerUffdWP    = "uffd-wp"
	TrackerSoftDirty = "soft-dirty"
	TrackerHash      = "hash"
)

// Regsets a native task has on a host, derived from the hwcap words: the
// kernel offers a regset exactly when the CPU feature behind it is present
// (arch/powerpc/kernel/ptrace/ptrace-view.c, arch/x86/kernel/ptrace.c).
func regsetsFor(a image.Arch, hwcap, hwcap2, xstate uint64) []string {
	switch a {
	case image.Arch_ARCH_AMD64:
		r := []string{"prstatus", "fpregs"}
		if xstate != 0 {
			r = append(r, "xstate")
		}
		return r
	case image.Arch_ARCH_PPC64LE, image.Arch_ARCH_PPC64:
		r := []string{"prstatus", "fpregs"}
		if hwcap&probePPCAltivec != 0 {
			r = append(r, "vmx")
		}
		if hwcap&probePPCVSX != 0 {
			r = append(r, "vsx")
		}
		if hwcap2&probePPC2Arch207 != 0 {
			r = append(r, "ppr", "dscr", "tar")
		}
		if hwcap2&probePPC2EBB != 0 {
			r = append(r, "ebb", "pmu")
		}
		if hwcap2&probePPC2HTM != 0 {
			r = append(r, "tm")
		}
		return r
	}
	return nil
}

// POWER hwcap bits, from arch/powerpc/include/uapi/asm/cputable.h.
const (
	probePPCAltivec  = 0x10000000
	probePPCVSX      = 0x00000080
	probePPC2Arch207 = 0x80000000
	probePPC2HTM     = 0x40000000
	probePPC2EBB     = 0x10000000
)
