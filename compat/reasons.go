package compat

import (
	"fmt"
	"strings"

	"github.com/migrated/migrated/image"
)

// Reason codes are stable: a code, once released, keeps its meaning forever,
// scripts switch on it, and docs/reason-codes.md documents every one of them
// (a test checks that). The message next to a code is for people and may be
// reworded at will.
const (
	// ReasonFormatVersion: the image format version is not one this build
	// reads.
	ReasonFormatVersion = "format-version"
	// ReasonManifest: the manifest is missing, or a field is missing or
	// contradicts another (arch vs word size, 32-bit arch vs needs_compat,
	// no thread ids, a facility of the other arch family).
	ReasonManifest = "manifest"
	// ReasonHostCaps: the destination did not advertise a capability the
	// decision needs (its arch, byte order, page size).
	ReasonHostCaps = "host-caps"
	// ReasonArch: the task and the destination are of different arch
	// families (x86 vs powerpc), or the task's arch is unknown.
	ReasonArch = "arch"
	// ReasonEndianness: the task's byte order differs from the destination
	// kernel's.
	ReasonEndianness = "endianness"
	// ReasonABI: the destination cannot run the task's ABI (ELFv1 vs ELFv2),
	// or the manifest's ABI does not belong to its arch.
	ReasonABI = "abi"
	// ReasonNo64Bit: a 64-bit task toward a kernel that runs no 64-bit tasks.
	ReasonNo64Bit = "no-64bit"
	// ReasonNoCompat32: a 32-bit task toward a kernel without 32-bit support
	// (CONFIG_COMPAT / IA32 emulation off).
	ReasonNoCompat32 = "no-compat32"
	// ReasonPageSize: the task's mappings cannot be placed with the
	// destination's page size.
	ReasonPageSize = "page-size"
	// ReasonHWCap: AT_HWCAP bits the task was started with are missing on
	// the destination.
	ReasonHWCap = "hwcap"
	// ReasonHWCap2: AT_HWCAP2 bits the task was started with are missing on
	// the destination.
	ReasonHWCap2 = "hwcap2"
	// ReasonVDSO: the destination's vDSO is not the one the task runs with.
	ReasonVDSO = "vdso"
	// ReasonTMActive: a powerpc hardware transaction is in flight (MSR[TS]
	// transactional or suspended).
	ReasonTMActive = "tm-active"
	// ReasonRegsetUnsupported: the task uses a register set the destination
	// cannot hold, or one that cannot be saved for a task of its kind.
	ReasonRegsetUnsupported = "regset"
	// ReasonXState: x86 XSAVE components the task may use are not enabled on
	// the destination CPU.
	ReasonXState = "xstate"
	// ReasonFdKind: the task holds file descriptors of a kind migrated does
	// not move yet.
	ReasonFdKind = "fd-kind"
	// ReasonPIDNamespace: the destination cannot recreate the task's PID and
	// TIDs (no clone3 set_tid) and new ids are not allowed.
	ReasonPIDNamespace = "pid-namespace"
	// ReasonPIDTaken: the task's PID or a TID is in use on the destination.
	ReasonPIDTaken = "pid-taken"
	// ReasonTimeNS: the task needs a time namespace and the destination
	// kernel has none.
	ReasonTimeNS = "timens"
	// ReasonCapability: the manifest sets a capability bit this build does
	// not know (a newer source).
	ReasonCapability = "capability"
)

// ReasonDoc documents one reason code: when Decide raises it and what an
// operator can do about it. Reasons is the table docs/reason-codes.md is
// written from.
type ReasonDoc struct {
	Code string
	// Example is a message as Decide writes it.
	Example string
	When    string
	Action  string
}

// Reasons lists every reason code with its documentation, in the order of
// docs/reason-codes.md.
var Reasons = []ReasonDoc{
	{ReasonFormatVersion,
		"image format version 2 is not one this agent reads (it reads 1)",
		"The source wrote an image format version this destination does not know.",
		"Run the same migrated version on both hosts, or upgrade the destination first."},
	{ReasonManifest,
		"manifest says arch amd64 with word size 4; amd64 tasks have 8-byte words",
		"The manifest is missing, a field is missing, or fields contradict each other.",
		"A bug or a version skew on the source: report it with the manifest (`migrated check --json`)."},
	{ReasonHostCaps,
		"destination did not advertise its page size",
		"The destination's capability probe left a field the decision needs empty.",
		"Check the destination agent's start-up log: its capability probe failed."},
	{ReasonArch,
		"task is powerpc (ppc64le); destination is x86 (amd64)",
		"The task and the destination are of different architecture families, or the arch is unknown.",
		"Pick a destination of the task's architecture (`migrated members` shows each node's arch)."},
	{ReasonEndianness,
		"task is big-endian; destination kernel is little-endian",
		"The task's byte order differs from the destination kernel's (ppc64/ppc32 vs ppc64le).",
		"Pick a destination with a kernel of the task's byte order."},
	{ReasonABI,
		"task uses the ELFv1 ABI (function descriptors); a little-endian powerpc kernel runs only ELFv2",
		"The destination cannot run the task's ABI (ELFv1 vs ELFv2), or the manifest's ABI does not belong to its arch.",
		"Pick a destination that runs the task's ABI (big-endian ppc64 runs both)."},
	{ReasonNo64Bit,
		"task is 64-bit (amd64); destination kernel runs no 64-bit tasks",
		"A 64-bit task toward a 32-bit kernel.",
		"Pick a destination with a 64-bit kernel."},
	{ReasonNoCompat32,
		"task is 32-bit (ppc32); destination kernel has no 32-bit support (CONFIG_COMPAT is off)",
		"A 32-bit task (i386, ppc32) toward a kernel without CONFIG_COMPAT / IA32 emulation (for example Debian's ppc64el kernel).",
		"Pick a destination whose kernel runs 32-bit tasks (x86: CONFIG_IA32_EMULATION, not disabled with ia32_emulation=0; powerpc: CONFIG_COMPAT)."},
	{ReasonPageSize,
		"task's mappings are aligned to 4 KiB pages; destination uses 64 KiB pages and cannot place them",
		"The task was started with a smaller page size than the destination's (its mappings may be misaligned there), a page size is not a power of two, or the manifest names none.",
		"Pick a destination with the task's page size, or one with smaller pages (see page-size translation below)."},
	{ReasonHWCap,
		"task was started with AT_HWCAP bits the destination CPU lacks: PPC_FEATURE_HAS_DFP (decimal floating point)",
		"AT_HWCAP bits the task was started with (glibc and others pick code paths from them) are missing on the destination. Informational bits (SMT, cache geometry, performance-monitor compatibility, x86 bits only the kernel uses) are not compared.",
		"Pick a destination whose CPU is at least the source's (same or newer generation)."},
	{ReasonHWCap2,
		"task was started with AT_HWCAP2 bits the destination CPU lacks: PPC_FEATURE2_ARCH_3_1 (ISA 3.1, POWER10), PPC_FEATURE2_MMA (matrix-multiply assist)",
		"AT_HWCAP2 bits the task was started with are missing on the destination, for example a ppc64le task started on POWER10 (ISA 3.1) toward a POWER9.",
		"Pick a destination whose CPU is at least the source's, or start the task on the older CPU generation."},
	{ReasonVDSO,
		"task runs with vDSO sha256 02ab00000000… (8192 bytes); destination has 07ab00000000… (8192 bytes)",
		"The destination's vDSO differs from the task's (a different kernel build), or an identity is missing. The task's code may be inside the vDSO or hold return addresses into it, so only an identical vDSO can be moved.",
		"Pick a destination running the same kernel build as the source. (A vDSO proxy that would lift this is not written yet.)"},
	{ReasonTMActive,
		"a thread is inside a hardware transaction (MSR[TS] transactional or suspended)",
		"A powerpc thread was frozen with a transaction in flight; its checkpointed state cannot be recreated on another CPU.",
		"Retry the move: transactions are short. A task that lives in transactions (HTM lock elision) can be started with elision off (glibc.elision.enable=0)."},
	{ReasonRegsetUnsupported,
		"task uses VSX; destination CPU has none",
		"The task uses a register set (VMX, VSX, SPE, DSCR, TAR, PPR, EBB, PKEY, debug registers) that the destination CPU or kernel does not offer, or one that cannot be saved for a task of its kind (VSX or PKEY of a 32-bit powerpc task: the compat regset view has none), or a register set unknown to this build.",
		"Pick a destination whose CPU and kernel offer the register set."},
	{ReasonXState,
		"task may use x86 XSAVE components the destination does not enable: AVX-512 opmask, AVX-512 ZMM_Hi256, AVX-512 Hi16_ZMM, PKRU",
		"XCR0 components of the source (x87, SSE, AVX, AVX-512, PKRU, AMX...) are not enabled on the destination. glibc picks memcpy and friends by them at start-up, so the task may execute those instructions at any time.",
		"Pick a destination with the same or a newer x86 CPU (and the same XSAVE features enabled by its kernel)."},
	{ReasonFdKind,
		"task holds file descriptors of kinds not moved yet: socket, signalfd",
		"The task holds file descriptors of a kind migrated does not recreate yet (the table is image.SupportedFdKinds; today: regular files (also unlinked ones, up to 64 MiB), directories, /dev/null, /dev/zero, eventfd and epoll).",
		"Close those descriptors in the task before moving it, or wait for a version that moves them."},
	{ReasonPIDNamespace,
		"destination cannot create tasks with chosen PIDs (clone3 set_tid unavailable) and the caller did not allow new ids",
		"The destination cannot recreate the task's PID and TIDs (no clone3 set_tid, or no CAP_CHECKPOINT_RESTORE), and new ids are not allowed (the caller did not allow them, or the task has several threads: glibc caches TIDs).",
		"Run the destination agent with CAP_CHECKPOINT_RESTORE on a kernel with clone3 set_tid (5.5+), or allow new ids for a single-threaded task."},
	{ReasonPIDTaken,
		"PID 4242 is in use on the destination",
		"The task's PID or one of its TIDs is already in use in the destination's PID namespace.",
		"Move into a fresh PID namespace on the destination, or allow new ids for a single-threaded task."},
	{ReasonTimeNS,
		"task needs a time namespace to keep its clocks continuous; destination kernel has none",
		"The task's monotonic and boot-time clocks must be shifted to stay continuous and the destination kernel has no time namespaces (CONFIG_TIME_NS).",
		"Pick a destination whose kernel has CONFIG_TIME_NS."},
	{ReasonCapability,
		"manifest sets capability bit 40, which this agent does not know",
		"The source set a capability bit this destination does not know (a newer source).",
		"Upgrade the destination to the source's version."},
}

// Plan steps of a TRANSLATE verdict. Each entry of Verdict.translations is
// "code: sentence"; the code is stable and restore switches on it
// (StepCode), the sentence is for people.
const (
	// StepStub32: restore into a 32-bit stub of the task's arch (i386: int
	// 0x80 and i386 syscall numbers; ppc32: sc with the 32-bit ABI).
	StepStub32 = "stub32"
	// StepCompatRegsets: register sets are in the compat layout (i386
	// NT_PRSTATUS 68 bytes, ppc32 192 bytes of u32) and are translated.
	StepCompatRegsets = "compat-regsets"
	// StepCompatLayouts: every struct injected into the task uses its compat
	// layout (compat_sigaction, compat_stack_t, compat_rlimit,
	// compat_itimerval, compat_robust_list_head).
	StepCompatLayouts = "compat-layouts"
	// StepVDSO32: the task's 32-bit vDSO is compared with the one the
	// kernel maps into the 32-bit stub, before pre-copy starts; a
	// difference fails the move with ReasonVDSO.
	StepVDSO32 = "vdso32-check"
	// StepPageSizeSmaller: the task keeps its (bigger) page size in its
	// auxv; each of its pages is placed as several destination pages.
	StepPageSizeSmaller = "page-size-smaller"
	// StepNewPID: the task gets new PID/TID on the destination (allowed by
	// the caller, single-threaded task).
	StepNewPID = "new-pid"
)

// StepDoc documents one plan step of a TRANSLATE verdict.
type StepDoc struct {
	Code string
	What string
}

// Steps lists every plan step code with what restore does for it.
var Steps = []StepDoc{
	{StepStub32, "Restore into a 32-bit stub of the task's arch: i386 injects syscalls with `int 0x80` and i386 numbers, ppc32 with `sc` and ppc32 numbers."},
	{StepCompatRegsets, "Register sets are in the compat layout a 64-bit tracer sees (i386 NT_PRSTATUS 68 bytes and NT_PRFPREG 108; ppc32 NT_PRSTATUS 192 bytes of big-endian u32) and are converted with DecodeI386Regs, DecodeI387Regs, DecodePPC32Regs."},
	{StepCompatLayouts, "Every struct injected into the task uses its compat layout: compat_sigaction, compat_sigset_t, compat_stack_t, compat_rlimit (prlimit64 for finite limits of 4 GiB or more), old_itimerval32, compat_robust_list_head (CompatABI)."},
	{StepVDSO32, "The task's 32-bit vDSO is compared (CompareVDSO) with the one the kernel maps into the 32-bit stub, when the stub starts and before any page is sent; a difference fails the move with `vdso`. HostCaps describes only the 64-bit vDSO."},
	{StepPageSizeSmaller, "The destination's pages are smaller than the task's: the task keeps its page size in its auxv (AT_PAGESZ) and each of its pages is placed as several destination pages."},
	{StepNewPID, "The task gets a new PID on the destination: the caller allowed it for this single-threaded task, and its PID cannot be kept there."},
}

// StepCode returns the stable code of one plan step of a TRANSLATE verdict.
func StepCode(step string) string {
	code, _, _ := strings.Cut(step, ":")
	return strings.TrimSpace(code)
}

// HasStep reports whether a verdict's plan contains the step with code.
func HasStep(v *image.Verdict, code string) bool {
	for _, s := range v.GetTranslations() {
		if StepCode(s) == code {
			return true
		}
	}
	return false
}

// Codes returns the reason codes of a verdict in order.
func Codes(v *image.Verdict) []string {
	var codes []string
	for _, r := range v.GetReasons() {
		codes = append(codes, r.GetCode())
	}
	return codes
}

// Report is the JSON form of a verdict, as `migrated check --json` prints it.
type Report struct {
	Verdict string         `json:"verdict"` // accept, translate or reject
	Reasons []ReportReason `json:"reasons"`
	Plan    []string       `json:"plan,omitempty"`
}

// ReportReason is one reason in a Report.
type ReportReason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewReport converts a verdict to its JSON form. A nil or unspecified verdict
// reports "reject": nothing was decided, so nothing may move.
func NewReport(v *image.Verdict) Report {
	r := Report{Verdict: "reject", Reasons: []ReportReason{}}
	switch v.GetKind() {
	case image.Verdict_ACCEPT:
		r.Verdict = "accept"
	case image.Verdict_TRANSLATE:
		r.Verdict = "translate"
	}
	for _, x := range v.GetReasons() {
		r.Reasons = append(r.Reasons, ReportReason{Code: x.GetCode(), Message: x.GetMessage()})
	}
	r.Plan = append(r.Plan, v.GetTranslations()...)
	return r
}

// String renders a report for people: the verdict on the first line, then one
// line per reason ("code: message") and per plan step.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString(r.Verdict)
	b.WriteByte('\n')
	for _, x := range r.Reasons {
		fmt.Fprintf(&b, "  %s: %s\n", x.Code, x.Message)
	}
	for _, s := range r.Plan {
		fmt.Fprintf(&b, "  plan %s\n", s)
	}
	return b.String()
}

// verdictBuilder collects reasons and plan steps while Decide walks the
// rules; every rule adds, none returns early, so a REJECT carries all
// reasons.
type verdictBuilder struct {
	reasons []*image.Reason
	steps   []string
}

func (b *verdictBuilder) reject(code, format string, args ...any) {
	b.reasons = append(b.reasons, &image.Reason{Code: code, Message: fmt.Sprintf(format, args...)})
}

func (b *verdictBuilder) step(code, format string, args ...any) {
	s := code + ": " + fmt.Sprintf(format, args...)
	for _, have := range b.steps {
		if StepCode(have) == code {
			return
		}
	}
	b.steps = append(b.steps, s)
}

func (b *verdictBuilder) verdict() *image.Verdict {
	switch {
	case len(b.reasons) > 0:
		return &image.Verdict{Kind: image.Verdict_REJECT, Reasons: b.reasons}
	case len(b.steps) > 0:
		return &image.Verdict{Kind: image.Verdict_TRANSLATE, Translations: b.steps}
	default:
		return &image.Verdict{Kind: image.Verdict_ACCEPT}
	}
}
