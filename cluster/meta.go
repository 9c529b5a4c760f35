package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"

	"github.com/hashicorp/memberlist"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// Meta is what a node advertises in its memberlist metadata.
type Meta struct {
	Caps compat.HostCaps `json:"caps"`
	// QUIC is the address of the node's QUIC transport (invalid if none).
	QUIC netip.AddrPort `json:"quic"`
	// Load is /proc/loadavg's 1, 5 and 15 minute averages (two decimals).
	Load [3]float64 `json:"load"`
	// FreeMemory is MemAvailable in bytes; TotalMemory is MemTotal.
	FreeMemory  uint64 `json:"free_memory"`
	TotalMemory uint64 `json:"total_memory"`
	CPUs        uint32 `json:"cpus"`
	// Tasks is the number of tasks the agent manages.
	Tasks uint32 `json:"tasks"`
	// Leaving: the node is leaving the cluster on purpose.
	Leaving bool `json:"leaving,omitempty"`
}

// The metadata encoding, version 1. All integers are unsigned varints
// (encoding/binary) unless noted; a string is a varint length and bytes.
//
//	version   byte (1)
//	flags     byte: 0 compat32, 1 run64, 2 timens, 3 clone3 set_tid,
//	          4 CAP_SYS_RESOURCE, 5 CAP_CHECKPOINT_RESTORE, 6 vdso present,
//	          7 quic present
//	arch      byte (image.Arch)
//	endian    byte (image.Endian)
//	pageshift byte (log2 of the page size)
//	hwcap, hwcap2, xstate
//	platform, kernel      strings
//	trackers, regsets     count, then strings
//	vdso (flag 6)         sha256 (string), size, count, then per mapping:
//	                      name (string), offset (zigzag varint), size
//	quic (flag 7)         address (string of 4 or 16 bytes), port
//	load                  3 x (load * 100)
//	free, total memory, cpus, tasks
//	state     byte: 0 leaving
//
// Fields are only ever appended: a decoder ignores bytes after the fields
// it knows, and a change that old decoders cannot skip bumps the version.
const metaVersion = 1

// MaxMetaSize is memberlist's limit; memberlist panics past it.
const MaxMetaSize = memberlist.MetaMaxSize

// Limits the decoder enforces on a peer's metadata.
const (
	maxMetaString = 128
	maxMetaList   = 32
)

var (
	// ErrMetaTooLarge: the encoding exceeds MaxMetaSize.
	ErrMetaTooLarge = errors.New("node metadata exceeds memberlist's 512-byte limit")
	// ErrMetaVersion: a peer speaks a metadata version this agent does not know.
	ErrMetaVersion = errors.New("unknown node metadata version")
	// ErrMetaMalformed: the bytes are not a metadata encoding.
	ErrMetaMalformed = errors.New("malformed node metadata")
)

const (
	flagCompat32 = 1 << iota
	flagRun64
	flagTimeNS
	flagClone3
	flagCapSysResource
	flagCapCheckpointRestore
	flagVDSO
	flagQUIC
)

// Encode packs m into at most MaxMetaSize bytes, or fails with ErrMetaTooLarge.
func (m Meta) Encode() ([]byte, error) {
	c := &m.Caps
	if c.PageSize == 0 || c.PageSize&(c.PageSize-1) != 0 {
		return nil, fmt.Errorf("encode metadata: page size %d is not a power of two", c.PageSize)
	}
	var flags byte
	for bit, on := range map[byte]bool{
		flagCompat32: c.Compat32, flagRun64: c.Run64, flagTimeNS: c.TimeNS, flagClone3: c.Clone3SetTID,
		flagCapSysResource: c.CapSysResource, flagCapCheckpointRestore: c.CapCheckpointRestore,
		flagVDSO: c.VDSO != nil, flagQUIC: m.QUIC.IsValid(),
	} {
		if on {
			flags |= bit
		}
	}
	b := make([]byte, 0, 256)
	b = append(b, metaVersion, flags, byte(c.Arch), byte(c.Endian), byte(bits.TrailingZeros64(c.PageSize)))
	b = binary.AppendUvarint(b, c.HWCap)
	b = binary.AppendUvarint(b, c.HWCap2)
	b = binary.AppendUvarint(b, c.XStateFeatures)
	b = appendString(b, c.Platform)
	b = appendString(b, c.KernelRelease)
	b = appendStrings(b, c.DirtyTrackers)
	b = appendStrings(b, c.Regsets)
	if v := c.VDSO; v != nil {
		b = appendString(b, string(v.Sha256))
		b = binary.AppendUvarint(b, v.VdsoSize)
		b = binary.AppendUvarint(b, uint64(len(v.Layout)))
		for _, s := range v.Layout {
			b = appendString(b, s.Name)
			b = binary.AppendVarint(b, s.Offset)
			b = binary.AppendUvarint(b, s.Size)
		}
	}
	if m.QUIC.IsValid() {
		b = appendString(b, string(m.QUIC.Addr().Unmap().AsSlice()))
		b = binary.AppendUvarint(b, uint64(m.QUIC.Port()))
	}
	for _, l := range m.Load {
		b = binary.AppendUvarint(b, uint64(math.Round(math.Max(0, math.Min(l, 1e9))*100)))
	}
	b = binary.AppendUvarint(b, m.FreeMemory)
	b = binary.AppendUvarint(b, m.TotalMemory)
	b = binary.AppendUvarint(b, uint64(m.CPUs))
	b = binary.AppendUvarint(b, uint64(m.Tasks))
	var state byte
	if m.Leaving {
		state |= 1
	}
	b = append(b, state)
	for _, s := range append(append([]string{c.Platform, c.KernelRelease}, c.DirtyTrackers...), c.Regsets...) {
		if len(s) > maxMetaString {
			return nil, fmt.Errorf("encode metadata: string of %d bytes: %w", len(s), ErrMetaTooLarge)
		}
	}
	if len(c.DirtyTrackers) > maxMetaList || len(c.Regsets) > maxMetaList || c.VDSO != nil && len(c.VDSO.Layout) > maxMetaList {
		return nil, fmt.Errorf("encode metadata: list longer than %d: %w", maxMetaList, ErrMetaTooLarge)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("encode metadata: %d bytes: %w", len(b), ErrMetaTooLarge)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// metaReader decodes with bounds checks; the first error sticks.
type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", what, ErrMetaMalformed)
	}
}

func (r *metaReader) byte(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *metaReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) string(what string) string {
	n := r.uvarint(what)
	if r.err != nil || n > maxMetaString || n > uint64(len(r.b)) {
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *metaReader) strings(what string) []string {
	n := r.uvarint(what)
	if r.err != nil || n > maxMetaList {
		r.fail(what)
		return nil
	}
	var ss []string
	for i := uint64(0); i < n && r.err == nil; i++ {
		ss = append(ss, r.string(what))
	}
	return ss
}

func (r *metaReader) uint32(what string) uint32 {
	v := r.uvarint(what)
	if v > math.MaxUint32 {
		r.fail(what)
	}
	return uint32(v)
}

// DecodeMeta reads a peer's metadata. It never panics and bounds every
// length by the input.
func DecodeMeta(b []byte) (*Meta, error) {
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("decode metadata: %d bytes: %w", len(b), ErrMetaTooLarge)
	}
	r := &metaReader{b: b}
	if v := r.byte("version"); r.err == nil && v != metaVersion {
		return nil, fmt.Errorf("decode metadata: version %d: %w", v, ErrMetaVersion)
	}
	m := &Meta{}
	c := &m.Caps
	flags := r.byte("flags")
	c.Arch = image.Arch(r.byte("arch"))
	c.Endian = image.Endian(r.byte("endian"))
	shift := r.byte("page shift")
	if shift > 40 {
		r.fail("page shift")
	}
	c.PageSize = 1 << shift
	c.Compat32 = flags&flagCompat32 != 0
	c.Run64 = flags&flagRun64 != 0
	c.TimeNS = flags&flagTimeNS != 0
	c.Clone3SetTID = flags&flagClone3 != 0
	c.CapSysResource = flags&flagCapSysResource != 0
	c.CapCheckpointRestore = flags&flagCapCheckpointRestore != 0
	c.HWCap = r.uvarint("hwcap")
	c.HWCap2 = r.uvarint("hwcap2")
	c.XStateFeatures = r.uvarint("xstate")
	c.Platform = r.string("platform")
	c.KernelRelease = r.string("kernel")
	c.DirtyTrackers = r.strings("dirty trackers")
	c.Regsets = r.strings("regsets")
	if flags&flagVDSO != 0 {
		v := &image.VDSOIdentity{}
		if sum := r.string("vdso sha256"); r.err == nil {
			v.Sha256 = []byte(sum)
		}
		v.VdsoSize = r.uvarint("vdso size")
		n := r.uvarint("vdso layout")
		if n > maxMetaList {
			r.fail("vdso layout")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			v.Layout = append(v.Layout, &image.SpecialMapping{
				Name: r.string("vdso mapping"), Offset: r.varint("vdso offset"), Size: r.uvarint("vdso mapping size"),
			})
		}
		c.VDSO = v
	}
	if flags&flagQUIC != 0 {
		a := r.string("quic address")
		port := r.uvarint("quic port")
		addr, ok := netip.AddrFromSlice([]byte(a))
		if r.err == nil && (!ok || port > math.MaxUint16) {
			r.fail("quic address")
		}
		m.QUIC = netip.AddrPortFrom(addr, uint16(port))
	}
	for i := range m.Load {
		m.Load[i] = float64(r.uvarint("load")) / 100
	}
	m.FreeMemory = r.uvarint("free memory")
	m.TotalMemory = r.uvarint("total memory")
	m.CPUs = r.uint32("cpus")
	m.Tasks = r.uint32("tasks")
	m.Leaving = r.byte("state")&1 != 0
	if r.err != nil {
		return nil, fmt.Errorf("decode metadata: %w", r.err)
	}
	return m, nil
}
