package compat

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/migrated/migrated/image"
)

// FormatVersions are the image format versions this build reads.
var FormatVersions = []uint32{1}

// family is an arch family: tasks move only within one.
type family int

const (
	familyUnknown family = iota
	familyX86
	familyPowerPC
)

func (f family) String() string {
	switch f {
	case familyX86:
		return "x86"
	case familyPowerPC:
		return "powerpc"
	}
	return "unknown"
}

// archInfo is what an arch implies about a task of that arch.
type archInfo struct {
	family   family
	endian   image.Endian
	wordSize uint32
	abis     []image.ABI
	compat32 bool // a 32-bit task on a 64-bit kernel
}

var archInfos = map[image.Arch]archInfo{
	image.Arch_ARCH_AMD64:   {familyX86, image.Endian_ENDIAN_LITTLE, 8, []image.ABI{image.ABI_ABI_SYSV_X86_64}, false},
	image.Arch_ARCH_I386:    {familyX86, image.Endian_ENDIAN_LITTLE, 4, []image.ABI{image.ABI_ABI_SYSV_I386}, true},
	image.Arch_ARCH_PPC64LE: {familyPowerPC, image.Endian_ENDIAN_LITTLE, 8, []image.ABI{image.ABI_ABI_PPC64_ELFV2}, false},
	image.Arch_ARCH_PPC64:   {familyPowerPC, image.Endian_ENDIAN_BIG, 8, []image.ABI{image.ABI_ABI_PPC64_ELFV1, image.ABI_ABI_PPC64_ELFV2}, false},
	image.Arch_ARCH_PPC32:   {familyPowerPC, image.Endian_ENDIAN_BIG, 4, []image.ABI{image.ABI_ABI_PPC32_SYSV}, true},
}

// hostABIs are the ABIs a kernel of a native arch runs. A little-endian
// powerpc kernel runs ELFv2 only; a big-endian one runs ELFv1 and ELFv2
// (it picks by the ELF header's e_flags) and, with CONFIG_COMPAT, ppc32.
var hostABIs = map[image.Arch][]image.ABI{
	image.Arch_ARCH_AMD64:   {image.ABI_ABI_SYSV_X86_64, image.ABI_ABI_SYSV_I386},
	image.Arch_ARCH_PPC64LE: {image.ABI_ABI_PPC64_ELFV2},
	image.Arch_ARCH_PPC64:   {image.ABI_ABI_PPC64_ELFV1, image.ABI_ABI_PPC64_ELFV2, image.ABI_ABI_PPC32_SYSV},
}

func archName(a image.Arch) string {
	switch a {
	case image.Arch_ARCH_AMD64:
		return "amd64"
	case image.Arch_ARCH_I386:
		return "i386"
	case image.Arch_ARCH_PPC64LE:
		return "ppc64le"
	case image.Arch_ARCH_PPC64:
		return "ppc64"
	case image.Arch_ARCH_PPC32:
		return "ppc32"
	}
	return fmt.Sprintf("unknown arch %d", int32(a))
}

func endianName(e image.Endian) string {
	switch e {
	case image.Endian_ENDIAN_LITTLE:
		return "little-endian"
	case image.Endian_ENDIAN_BIG:
		return "big-endian"
	}
	return "of unknown byte order"
}

func abiName(a image.ABI) string {
	switch a {
	case image.ABI_ABI_SYSV_X86_64:
		return "x86-64 System V"
	case image.ABI_ABI_SYSV_I386:
		return "i386 System V"
	case image.ABI_ABI_PPC64_ELFV1:
		return "ELFv1 (function descriptors)"
	case image.ABI_ABI_PPC64_ELFV2:
		return "ELFv2"
	case image.ABI_ABI_PPC32_SYSV:
		return "ppc32 System V"
	}
	return fmt.Sprintf("unknown ABI %d", int32(a))
}

func sizeName(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Decide answers whether the host described by h can run the task described
// by m: ACCEPT, TRANSLATE with the plan (Verdict.translations, "code:
// sentence" each, see the Step* codes), or REJECT with every reason found,
// not only the first. It is pure and total: nil or zero fields never panic;
// a field the decision needs and does not find is itself a reason.
//
// When the task and the host are of different arch families, the checks
// that compare arch-specific tables (byte order, ABI, bitness, HWCAP,
// register sets, XSAVE) are skipped: their answers would be noise next to
// ReasonArch. PID availability needs the destination's live process table:
// DecidePIDs adds it.
func Decide(m *image.Manifest, h *HostCaps) *image.Verdict {
	var b verdictBuilder
	if h == nil {
		h = &HostCaps{}
	}
	if m == nil {
		b.reject(ReasonManifest, "no manifest was sent")
		return b.verdict()
	}
	hd := m.GetHeader()
	if hd == nil {
		b.reject(ReasonManifest, "manifest has no header")
	}

	if v := hd.GetFormatVersion(); !slices.Contains(FormatVersions, v) {
		b.reject(ReasonFormatVersion, "image format version %d is not one this agent reads (it reads %s)", v, joinUints(FormatVersions))
	}

	task, taskKnown := archInfos[hd.GetArch()]
	host, hostKnown := archInfos[h.Arch]
	if !hostKnown || host.compat32 {
		b.reject(ReasonHostCaps, "destination advertised no 64-bit native arch (got %s)", archName(h.Arch))
	}
	switch {
	case !taskKnown:
		b.reject(ReasonArch, "manifest names no known arch (%s)", archName(hd.GetArch()))
	case hostKnown && task.family != host.family:
		b.reject(ReasonArch, "task is %s (%s); destination is %s (%s)", task.family, archName(hd.GetArch()), host.family, archName(h.Arch))
	}
	sameFamily := taskKnown && hostKnown && task.family == host.family

	if taskKnown {
		decideManifestConsistency(&b, m, task)
	}
	if sameFamily {
		decideEndianness(&b, hd, h)
		decideABI(&b, hd, task, h)
		decideBitness(&b, hd, task, h)
		decideHWCap(&b, m, task.family, h)
		decideRegsets(&b, m, hd.GetArch(), task.family, h)
		if task.family == familyX86 {
			decideXState(&b, m, h)
		}
	}
	decidePageSize(&b, hd.GetPageSize(), h.PageSize)
	decideVDSO(&b, hd.GetVdso(), h.VDSO, taskKnown && task.compat32)
	decideFdKinds(&b, m.GetFdKinds())
	decideIDs(&b, m, h)
	decideOtherCaps(&b, m, h)
	return b.verdict()
}

// DecidePIDs is Decide plus the availability of the task's PID and TIDs on
// the destination right now: inUse reports whether an id is taken in the
// PID namespace the task would be restored into.
func DecidePIDs(m *image.Manifest, h *HostCaps, inUse func(id int32) bool) *image.Verdict {
	v := Decide(m, h)
	if inUse == nil || len(m.GetTids()) == 0 {
		return v
	}
	var taken []string
	for _, id := range m.GetTids() {
		if id > 0 && inUse(id) {
			taken = append(taken, fmt.Sprint(id))
		}
	}
	if len(taken) == 0 {
		return v
	}
	b := verdictBuilder{reasons: v.GetReasons(), steps: v.GetTranslations()}
	if m.GetAllowNewIds() && len(m.GetTids()) == 1 {
		b.step(StepNewPID, "PID %s is in use on the destination; the caller allowed a new one", taken[0])
	} else {
		what := "PID " + taken[0] + " is"
		if len(taken) > 1 {
			what = "PID/TIDs " + strings.Join(taken, ", ") + " are"
		}
		b.reject(ReasonPIDTaken, "%s in use on the destination", what)
	}
	return b.verdict()
}

// decideManifestConsistency checks that the header's fields agree with its
// arch: a source that says amd64 with 4-byte words is broken, and guessing
// which field is right would be worse than refusing.
func decideManifestConsistency(b *verdictBuilder, m *image.Manifest, task archInfo) {
	hd := m.GetHeader()
	arch := archName(hd.GetArch())
	if ws := hd.GetWordSize(); ws != task.wordSize {
		b.reject(ReasonManifest, "manifest says arch %s with word size %d; %s tasks have %d-byte words", arch, ws, arch, task.wordSize)
	}
	if m.GetNeedsCompat() != task.compat32 {
		b.reject(ReasonManifest, "manifest says arch %s with needs_compat=%t", arch, m.GetNeedsCompat())
	}
	if len(m.GetTids()) == 0 {
		b.reject(ReasonManifest, "manifest lists no thread ids")
	}
	for _, id := range m.GetTids() {
		if id <= 0 {
			b.reject(ReasonManifest, "manifest lists thread id %d", id)
			break
		}
	}
}

func decideEndianness(b *verdictBuilder, hd *image.Header, h *HostCaps) {
	te := hd.GetEndian()
	if te == image.Endian_ENDIAN_UNSPECIFIED {
		b.reject(ReasonEndianness, "manifest names no byte order")
		return
	}
	if want := archInfos[hd.GetArch()].endian; te != want {
		b.reject(ReasonManifest, "manifest says arch %s is %s", archName(hd.GetArch()), endianName(te))
	}
	if h.Endian == image.Endian_ENDIAN_UNSPECIFIED {
		b.reject(ReasonHostCaps, "destination did not advertise its byte order")
		return
	}
	if te != h.Endian {
		b.reject(ReasonEndianness, "task is %s; destination kernel is %s", endianName(te), endianName(h.Endian))
	}
}

func decideABI(b *verdictBuilder, hd *image.Header, task archInfo, h *HostCaps) {
	abi := hd.GetAbi()
	if abi == image.ABI_ABI_UNSPECIFIED {
		b.reject(ReasonABI, "manifest names no ABI")
		return
	}
	if !slices.Contains(task.abis, abi) {
		b.reject(ReasonABI, "manifest says arch %s with the %s ABI, which no %s kernel runs", archName(hd.GetArch()), abiName(abi), archName(hd.GetArch()))
		return
	}
	runs, ok := hostABIs[h.Arch]
	if !ok || slices.Contains(runs, abi) {
		return
	}
	switch {
	case abi == image.ABI_ABI_PPC64_ELFV1 && h.Arch == image.Arch_ARCH_PPC64LE:
		b.reject(ReasonABI, "task uses the ELFv1 ABI (function descriptors); a little-endian powerpc kernel runs only ELFv2")
	case abi == image.ABI_ABI_PPC32_SYSV:
		// A 32-bit task toward a kernel that cannot run it is told by
		// ReasonNoCompat32 and ReasonEndianness; a third reason would
		// say the same again.
	default:
		b.reject(ReasonABI, "task uses the %s ABI; a %s kernel does not run it", abiName(abi), archName(h.Arch))
	}
}

func decideBitness(b *verdictBuilder, hd *image.Header, task archInfo, h *HostCaps) {
	arch := archName(hd.GetArch())
	if !task.compat32 {
		if !h.Run64 {
			b.reject(ReasonNo64Bit, "task is 64-bit (%s); destination kernel runs no 64-bit tasks", arch)
		}
		return
	}
	if !h.Compat32 {
		what := "IA32 emulation is off"
		if task.family == familyPowerPC {
			what = "CONFIG_COMPAT is off"
		}
		b.reject(ReasonNoCompat32, "task is 32-bit (%s); destination kernel has no 32-bit support (%s)", arch, what)
		return
	}
	switch hd.GetArch() {
	case image.Arch_ARCH_I386:
		b.step(StepStub32, "restore into a 32-bit i386 stub; inject syscalls with int 0x80 and i386 syscall numbers")
		b.step(StepCompatRegsets, "translate register sets from the compat view (NT_PRSTATUS 68 bytes, NT_PRFPREG 108 bytes)")
	default:
		b.step(StepStub32, "restore into a 32-bit ppc32 stub; inject syscalls with sc and ppc32 syscall numbers")
		b.step(StepCompatRegsets, "translate register sets from the compat view (NT_PRSTATUS 192 bytes of u32, big-endian)")
	}
	b.step(StepCompatLayouts, "inject compat structs: compat_sigaction, compat_stack_t, compat_rlimit, compat_itimerval, compat_robust_list_head")
}

func decideHWCap(b *verdictBuilder, m *image.Manifest, f family, h *HostCaps) {
	t1, t2 := hwcapTables(f)
	if missing := requiredHWCap(t1, m.GetHwcap()) &^ h.HWCap; missing != 0 {
		b.reject(ReasonHWCap, "task was started with AT_HWCAP bits the destination CPU lacks: %s", strings.Join(HWCapNames(t1, missing), ", "))
	}
	if missing := requiredHWCap(t2, m.GetHwcap2()) &^ h.HWCap2; missing != 0 {
		b.reject(ReasonHWCap2, "task was started with AT_HWCAP2 bits the destination CPU lacks: %s", strings.Join(HWCapNames(t2, missing), ", "))
	}
}

// capNeed is what the destination must offer for one capability of a
// powerpc task: a register set its kernel lists and, where one exists, the
// HWCAP bit that says the CPU has the facility.
type capNeed struct {
	cap    image.Cap
	regset string
	hwcap  uint64 // in AT_HWCAP
	hwcap2 uint64 // in AT_HWCAP2
}

var powerpcNeeds = []capNeed{
	{image.Cap_CAP_VMX, RegsetVMX, PPCFeatureHasAltivec, 0},
	{image.Cap_CAP_VSX, RegsetVSX, PPCFeatureHasVSX, 0},
	{image.Cap_CAP_SPE, RegsetSPE, PPCFeatureHasSPE, 0},
	{image.Cap_CAP_DSCR, RegsetDSCR, 0, PPCFeature2DSCR},
	{image.Cap_CAP_TAR, RegsetTAR, 0, PPCFeature2TAR},
	{image.Cap_CAP_PPR, RegsetPPR, 0, 0},
	{image.Cap_CAP_EBB, RegsetEBB, 0, PPCFeature2EBB},
	{image.Cap_CAP_PKEY, RegsetPKey, 0, 0},
	{image.Cap_CAP_WATCHPOINT, RegsetHWDebug, 0, 0},
}

// compat32Unreadable are facilities of a 32-bit powerpc task that a 64-bit
// tracer cannot read or write: the compat regset view
// (arch/powerpc/kernel/ptrace/ptrace-view.c, compat_regsets) has GPR, FPR,
// VMX, SPE, TM, PPR, DSCR, TAR and EBB, but no VSX and no PKEY.
var compat32Unreadable = map[image.Cap]string{
	image.Cap_CAP_VSX:  "VSX",
	image.Cap_CAP_PKEY: "memory protection keys (AMR/IAMR)",
}

// powerpcOnly and x86Only are the capabilities that exist in one family only.
var (
	powerpcOnly = []image.Cap{image.Cap_CAP_VMX, image.Cap_CAP_VSX, image.Cap_CAP_SPE, image.Cap_CAP_TM,
		image.Cap_CAP_DSCR, image.Cap_CAP_TAR, image.Cap_CAP_PPR, image.Cap_CAP_EBB}
	x86Only = []image.Cap{image.Cap_CAP_SSE, image.Cap_CAP_AVX, image.Cap_CAP_AVX512}
)

func decideRegsets(b *verdictBuilder, m *image.Manifest, arch image.Arch, f family, h *HostCaps) {
	caps := m.GetCapabilities()
	has := func(c image.Cap) bool { return caps&bit(c) != 0 }
	foreign, family := powerpcOnly, "powerpc"
	if f == familyPowerPC {
		foreign, family = x86Only, "x86"
	}
	for _, c := range foreign {
		if has(c) {
			b.reject(ReasonManifest, "manifest says the %s task uses %s, a %s facility", archName(arch), capName(c), family)
		}
	}
	if has(image.Cap_CAP_TM) {
		b.reject(ReasonTMActive, "a thread is inside a hardware transaction (MSR[TS] transactional or suspended)")
	}
	for _, name := range m.GetRegsets() {
		if !knownRegsetName(name) {
			b.reject(ReasonRegsetUnsupported, "task has register set %q, which this agent does not know", name)
		}
	}
	if f == familyX86 {
		if has(image.Cap_CAP_WATCHPOINT) && !slices.Contains(h.Regsets, RegsetHWDebug) {
			b.reject(ReasonRegsetUnsupported, "task has hardware watchpoints set; destination cannot restore debug registers")
		}
		return
	}
	for _, n := range powerpcNeeds {
		if !has(n.cap) {
			continue
		}
		name := capName(n.cap)
		if what, ok := compat32Unreadable[n.cap]; ok && arch == image.Arch_ARCH_PPC32 {
			b.reject(ReasonRegsetUnsupported, "32-bit task uses %s; a 64-bit tracer cannot read or write it for a 32-bit task (the compat regset view has none)", what)
			continue
		}
		switch {
		case n.hwcap&^h.HWCap != 0 || n.hwcap2&^h.HWCap2 != 0:
			b.reject(ReasonRegsetUnsupported, "task uses %s; destination CPU has none", name)
		case !slices.Contains(h.Regsets, n.regset):
			b.reject(ReasonRegsetUnsupported, "task uses %s; destination kernel offers no %s register set", name, n.regset)
		}
	}
}

// xstateNeeds are the XCR0 components behind the x86 capability bits.
var xstateNeeds = []struct {
	cap  image.Cap
	bits uint64
}{
	{image.Cap_CAP_SSE, XFeatureSSE},
	{image.Cap_CAP_AVX, XFeatureYMM},
	{image.Cap_CAP_AVX512, XFeatureAVX512},
	{image.Cap_CAP_PKEY, XFeaturePKRU},
}

func decideXState(b *verdictBuilder, m *image.Manifest, h *HostCaps) {
	need := m.GetXstateFeatures()
	for _, n := range xstateNeeds {
		if m.GetCapabilities()&bit(n.cap) != 0 {
			need |= n.bits
		}
	}
	if missing := need &^ h.XStateFeatures; missing != 0 {
		if h.XStateFeatures == 0 {
			b.reject(ReasonXState, "task may use x86 XSAVE components %s; destination advertised none", strings.Join(XStateNames(missing), ", "))
			return
		}
		b.reject(ReasonXState, "task may use x86 XSAVE components the destination does not enable: %s", strings.Join(XStateNames(missing), ", "))
	}
}

// decidePageSize: a task started with small pages may have mappings aligned
// only to them, which a bigger-page kernel cannot place: reject. The other
// way round every mapping is aligned to the destination's pages as well, so
// the move is a translation: the task keeps its page size in its auxv (glibc
// caches it), and each of its pages is placed as several destination pages.
// mmap, munmap, mprotect and madvise calls the task makes afterwards with
// its bigger page size stay aligned. What does not fit is an interface that
// fills one entry per kernel page (mincore, /proc/self/pagemap): a buffer
// sized from the task's page size is too small for it. That caveat is in
// docs/reason-codes.md.
func decidePageSize(b *verdictBuilder, task, host uint64) {
	switch {
	case task == 0:
		b.reject(ReasonPageSize, "manifest names no page size")
	case bits.OnesCount64(task) != 1:
		b.reject(ReasonPageSize, "task page size %d is not a power of two", task)
	case host == 0:
		b.reject(ReasonHostCaps, "destination did not advertise its page size")
	case bits.OnesCount64(host) != 1:
		b.reject(ReasonHostCaps, "destination page size %d is not a power of two", host)
	case task < host:
		b.reject(ReasonPageSize, "task's mappings are aligned to %s pages; destination uses %s pages and cannot place them", sizeName(task), sizeName(host))
	case task > host:
		b.step(StepPageSizeSmaller, "task keeps its %s page size (AT_PAGESZ); each of its pages is placed as %d destination pages of %s", sizeName(task), task/host, sizeName(host))
	}
}

// decideVDSO: the task may be executing inside its vDSO or hold return
// addresses into it (a signal frame returns through it), so only the very
// same vDSO, at the same layout relative to [vvar], can take its place. A
// task without a vDSO sends an identity with size 0 and no hash. A 32-bit
// task runs with the kernel's 32-bit vDSO, which HostCaps does not describe:
// restore compares it with the one mapped into the 32-bit stub (StepVDSO32).
func decideVDSO(b *verdictBuilder, task, host *image.VDSOIdentity, compat32 bool) {
	if task == nil {
		b.reject(ReasonVDSO, "manifest has no vDSO identity")
		return
	}
	if task.GetVdsoSize() == 0 && len(task.GetSha256()) == 0 {
		return // the task has no vDSO
	}
	if compat32 {
		b.step(StepVDSO32, "compare the task's 32-bit vDSO (sha256 %s) with the one mapped into the 32-bit stub before pre-copy", short(task.GetSha256()))
		return
	}
	if r := CompareVDSO(task, host); r != nil {
		b.reasons = append(b.reasons, r)
	}
}

// CompareVDSO compares the vDSO a task runs with against one the destination
// offers (its own, or the one the kernel mapped into a 32-bit stub) and
// returns the ReasonVDSO reason when they differ, nil when they are the same.
func CompareVDSO(task, dest *image.VDSOIdentity) *image.Reason {
	r := func(format string, args ...any) *image.Reason {
		return &image.Reason{Code: ReasonVDSO, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case task == nil:
		return r("manifest has no vDSO identity")
	case dest == nil || len(dest.GetSha256()) == 0:
		return r("destination did not advertise its vDSO identity")
	case !bytes.Equal(task.GetSha256(), dest.GetSha256()) || task.GetVdsoSize() != dest.GetVdsoSize():
		return r("task runs with vDSO sha256 %s (%d bytes); destination has %s (%d bytes)",
			short(task.GetSha256()), task.GetVdsoSize(), short(dest.GetSha256()), dest.GetVdsoSize())
	}
	tl, dl := task.GetLayout(), dest.GetLayout()
	if len(tl) != len(dl) {
		return r("vDSO is the same but its neighbours differ: task has %d special mappings, destination %d", len(tl), len(dl))
	}
	for i := range tl {
		if tl[i].GetName() != dl[i].GetName() || tl[i].GetOffset() != dl[i].GetOffset() || tl[i].GetSize() != dl[i].GetSize() {
			return r("vDSO is the same but %s lies at %+d (%d bytes) for the task and %s at %+d (%d bytes) on the destination",
				tl[i].GetName(), tl[i].GetOffset(), tl[i].GetSize(), dl[i].GetName(), dl[i].GetOffset(), dl[i].GetSize())
		}
	}
	return nil
}

func joinUints(v []uint32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func short(sum []byte) string {
	if len(sum) == 0 {
		return "(none)"
	}
	s := hex.EncodeToString(sum)
	if len(s) > 12 {
		s = s[:12] + "…"
	}
	return s
}

// decideFdKinds checks the task's fd kinds against image.SupportedFdKinds,
// the one table the checkpoint, restore and compat code share.
func decideFdKinds(b *verdictBuilder, kinds []image.FdKind) {
	var bad []string
	for _, k := range kinds {
		if image.SupportedFdKinds[k] {
			continue
		}
		name := image.FdKindName(k)
		if !slices.Contains(bad, name) {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		b.reject(ReasonFdKind, "task holds file descriptors of kinds not moved yet: %s", strings.Join(bad, ", "))
	}
}

// decideIDs: glibc caches the TID of every thread (and the PID), so a task
// resumed under other ids misbehaves; it is allowed only when the caller
// says so and the task has a single thread.
func decideIDs(b *verdictBuilder, m *image.Manifest, h *HostCaps) {
	n := len(m.GetTids())
	if h.Clone3SetTID || n == 0 {
		return
	}
	switch {
	case m.GetAllowNewIds() && n == 1:
		b.step(StepNewPID, "destination cannot choose PIDs (clone3 set_tid unavailable); the caller allowed a new PID")
	case m.GetAllowNewIds():
		b.reject(ReasonPIDNamespace, "destination cannot create tasks with chosen PIDs (clone3 set_tid unavailable) and the task has %d threads, whose TIDs glibc caches", n)
	default:
		b.reject(ReasonPIDNamespace, "destination cannot create tasks with chosen PIDs (clone3 set_tid unavailable) and the caller did not allow new ids")
	}
}

// knownCaps is every Cap bit this build knows.
const knownCaps = uint64(1)<<(uint(image.Cap_CAP_TIMENS)+1) - 2

func decideOtherCaps(b *verdictBuilder, m *image.Manifest, h *HostCaps) {
	caps := m.GetCapabilities()
	if caps&bit(image.Cap_CAP_TIMENS) != 0 && !h.TimeNS {
		b.reject(ReasonTimeNS, "task needs a time namespace to keep its clocks continuous; destination kernel has none")
	}
	if unknown := caps &^ knownCaps; unknown != 0 {
		var names []string
		for i := 0; i < 64; i++ {
			if unknown&(1<<i) != 0 {
				names = append(names, fmt.Sprint(i))
			}
		}
		what := "bit " + names[0]
		if len(names) > 1 {
			what = "bits " + strings.Join(names, ", ")
		}
		b.reject(ReasonCapability, "manifest sets capability %s, which this agent does not know", what)
	}
}
