package compat

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const reasonDocPath = "../docs/reason-codes.md"

// reasonCodesMarkdown renders docs/reason-codes.md from Reasons and Steps,
// so the documentation cannot drift from the code.
func reasonCodesMarkdown() string {
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString(`# Verdicts and reason codes

Before anything irreversible, the destination decides whether it can run the task
(` + "`compat.Decide`" + `, once on the source's manifest before pre-copy and again on the final
state before it answers Prepared). The answer is one of:

- **accept**: the task runs there as it is;
- **translate**: the task runs there after the steps of a plan (below);
- **reject**: it does not, for every reason listed, not only the first one found.

` + "`migrated check <pid> <host>`" + ` prints the verdict with every reason, and ` + "`--json`" + ` prints
one object:

` + "```json" + `
{"verdict": "reject",
 "reasons": [{"code": "no-compat32", "message": "task is 32-bit (ppc32); destination kernel has no 32-bit support (CONFIG_COMPAT is off)"},
             {"code": "endianness", "message": "task is big-endian; destination kernel is little-endian"}]}
` + "```" + `

A **code** is stable: once released it keeps its meaning, and scripts may switch on it. The
**message** is for people and may be reworded. This page is generated from
` + "`compat/reasons.go`" + ` (` + "`MIGRATED_UPDATE_DOCS=1 go test ./compat -run TestReasonCodesDoc`" + `); a test
fails when they disagree.

## Reason codes

| code | when | example message | what to do |
|---|---|---|---|
`)
	for _, r := range Reasons {
		b.WriteString("| `" + r.Code + "` | " + cell(r.When) + " | " + cell(r.Example) + " | " + cell(r.Action) + " |\n")
	}
	b.WriteString(`
## Plan steps of a translation

Each step of a **translate** verdict reads ` + "`code: sentence`" + `; restore acts on the code.

| step | what restore does |
|---|---|
`)
	for _, s := range Steps {
		b.WriteString("| `" + s.Code + "` | " + cell(s.What) + " |\n")
	}
	b.WriteString(`
## Decisions worth explaining

- **Missing facts are reasons.** A field the decision needs and does not find (no page size,
  no vDSO identity, no arch) rejects with a reason naming it; nothing is assumed.
- **Arch families.** When the task and the host are of different families (x86 vs powerpc),
  only ` + "`arch`" + ` and the family-independent reasons (format version, page size, vDSO, fd
  kinds, PIDs, time namespace) are reported; comparing x86 HWCAP bits with powerpc ones would
  only add noise.
- **Page size.** A task started with small pages may hold mappings aligned only to them,
  which a bigger-page kernel cannot place: ` + "`page-size`" + `. Toward *smaller* pages every
  mapping is also aligned to the destination's pages, and the task's own later mmap, munmap,
  mprotect and madvise calls, made with its bigger page size, stay aligned too: that is the
  ` + "`page-size-smaller`" + ` translation. The task keeps the bigger value in AT_PAGESZ (glibc
  caches it). The one thing that does not fit is an interface that fills one entry per *kernel*
  page: a task sizing a mincore() vector or a /proc/self/pagemap read from its page size would
  get more entries than it expects. Do not move such a task to a smaller-page host.
- **HWCAP superset.** glibc and other libraries pick code paths from AT_HWCAP/AT_HWCAP2 at
  start-up, so every bit the task started with must exist on the destination. Bits that only
  describe the machine (powerpc SMT, cache geometry, PERFMON_COMPAT, the LE-mode bits whose
  subject ` + "`endianness`" + ` already covers; x86 CPUID.1 EDX bits only ring 0 can use, such as
  ht, apic, mce, pae) are not compared: they differ between otherwise identical VMs. Bit
  names are the kernel's macros (` + "`compat.PowerPCHWCap`" + `, ` + "`compat.X86HWCap`" + `).
- **x86 XSAVE.** The task may use every component of its source's XCR0 (glibc selects AVX-512
  or AVX2 string functions from it), so the destination's XCR0 must include all of them,
  whether or not the components were in use at the freeze.
- **Register sets.** A powerpc task that uses VMX, VSX, SPE, DSCR, TAR, PPR, EBB or memory keys
  needs the CPU feature (HWCAP) and the kernel's register set on the destination. VSX and
  memory keys of a *32-bit* powerpc task are refused: the compat regset view a 64-bit tracer
  gets has no VSX and no PKEY set, so that state cannot be saved. Memory keys count as used
  whenever the kernel offers NT_PPC_PKEY (AMR never keeps its reset value then): a host
  that lists no ` + "`pkey`" + ` register set refuses such tasks.
- **vDSO.** Only the very same vDSO (bytes and the layout of [vvar], [vvar_vclock], [vdso])
  is accepted: the task may be executing in it or hold return addresses into it. A task with
  no vDSO sends an empty identity (size 0, no hash). For a 32-bit task the comparison
  happens against the vDSO the kernel maps into the 32-bit stub (` + "`vdso32-check`" + `).
- **PIDs.** glibc caches the PID and every TID, so ids are kept with clone3 set_tid.
  ` + "`pid-taken`" + ` is decided by ` + "`compat.DecidePIDs`" + ` on the destination, against its live process
  table; a single-threaded task may get a new PID when the caller allows it.
`)
	return b.String()
}

// TestReasonCodesDoc keeps docs/reason-codes.md generated from the tables.
func TestReasonCodesDoc(t *testing.T) {
	want := reasonCodesMarkdown()
	if os.Getenv("MIGRATED_UPDATE_DOCS") != "" {
		if err := os.WriteFile(reasonDocPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(reasonDocPath)
	if err != nil {
		t.Fatalf("read %s: %v", reasonDocPath, err)
	}
	if string(got) != want {
		t.Errorf("%s is stale: run MIGRATED_UPDATE_DOCS=1 go test ./compat -run TestReasonCodesDoc", reasonDocPath)
	}
}

func TestStepCode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"stub32: restore into a stub", StepStub32},
		{"new-pid", StepNewPID},
		{"", ""},
		{" vdso32-check : x: y", StepVDSO32},
	} {
		if got := StepCode(tc.in); got != tc.want {
			t.Errorf("StepCode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, s := range Steps {
		if s.What == "" {
			t.Errorf("step %s undocumented", s.Code)
		}
	}
}

// TestReportJSON pins the JSON shape `migrated check --json` prints.
func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(NewReport(Decide(taskPPC32(), hostP9LE())))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Verdict string `json:"verdict"`
		Reasons []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"reasons"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Verdict != "reject" || len(got.Reasons) != 2 || got.Reasons[0].Code == "" || got.Reasons[0].Message == "" {
		t.Errorf("JSON %s", b)
	}
	if b, _ := json.Marshal(NewReport(Decide(taskAMD64(), hostAMD64()))); string(b) != `{"verdict":"accept","reasons":[]}` {
		t.Errorf("accept JSON %s", b)
	}
}
