package agent

import (
	"fmt"
	"strings"

	"github.com/migrated/migrated/compat"
)

// Check is one line of `migrated doctor`.
type Check struct {
	Name string `json:"name"`
	// Status: "ok"; "missing" (an optional feature: moves still work, at
	// the Cost said); "error" (moves from or to this host cannot work).
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Cost of a missing feature, for a person deciding whether to fix it.
	Cost string `json:"cost,omitempty"`
}

// Check statuses.
const (
	CheckOK      = "ok"
	CheckMissing = "missing"
	CheckError   = "error"
)

// DoctorReport is what `migrated doctor --json` prints and GET /v1/doctor returns.
type DoctorReport struct {
	Caps   *compat.HostCaps `json:"caps"`
	Checks []Check          `json:"checks"`
}

// OK is false when a required feature is missing.
func (r DoctorReport) OK() bool {
	for _, c := range r.Checks {
		if c.Status == CheckError {
			return false
		}
	}
	return true
}

// Doctor explains what a host can and cannot do for moves, in the spirit
// of `criu check`.
func Doctor(h *compat.HostCaps, notes compat.ProbeNotes) DoctorReport {
	var cs []Check
	add := func(name string, ok bool, okDetail, missDetail, cost string, required bool) {
		c := Check{Name: name, Status: CheckOK, Detail: okDetail}
		if !ok {
			c.Status, c.Detail, c.Cost = CheckMissing, missDetail, cost
			if required {
				c.Status = CheckError
			}
		}
		cs = append(cs, c)
	}
	has := func(t string) bool {
		for _, x := range h.DirtyTrackers {
			if x == t {
				return true
			}
		}
		return false
	}
	note := func(k string) string {
		if n := notes[k]; n != "" {
			return n
		}
		return "not found"
	}

	add("arch", true, fmt.Sprintf("%s, %s-endian, %d-byte pages, platform %q, kernel %s",
		strings.ToLower(strings.TrimPrefix(h.Arch.String(), "ARCH_")),
		strings.ToLower(strings.TrimPrefix(h.Endian.String(), "ENDIAN_")),
		h.PageSize, h.Platform, h.KernelRelease), "", "", true)
	add("hwcap", true, fmt.Sprintf("AT_HWCAP %#x AT_HWCAP2 %#x", h.HWCap, h.HWCap2), "", "", true)
	add("32-bit tasks", h.Compat32, "the kernel runs 32-bit executables (COMPAT / IA32 emulation)",
		note(compat.FeatureCompat32),
		"32-bit tasks cannot be moved to this host, nor started here", false)
	add("dirty tracking: userfaultfd write-protect", has(compat.TrackerUffdWP),
		"userfaultfd async write-protect with PAGEMAP_SCAN works", note(compat.FeatureUffdWP),
		"pre-copy uses soft-dirty if present, else page hashing", false)
	add("dirty tracking: soft-dirty", has(compat.TrackerSoftDirty),
		"clear_refs 4 and pagemap bit 55 work", note(compat.FeatureSoftDirty),
		"none while userfaultfd write-protect works; otherwise pre-copy hashes pages", false)
	fast := has(compat.TrackerUffdWP) || has(compat.TrackerSoftDirty)
	add("dirty tracking: kernel-assisted", fast, fmt.Sprintf("trackers, best first: %v", h.DirtyTrackers),
		"neither userfaultfd write-protect nor soft-dirty works: pre-copy hashes every page each round",
		"about 0.4 s of CPU per GiB of task memory per pre-copy round, and longer downtime", false)
	vdso := "no [vdso] mapping: " + note(compat.FeatureVDSO)
	if h.VDSO != nil {
		vdso = fmt.Sprintf("%d-byte [vdso] with %d related mappings, sha256 %x", h.VDSO.VdsoSize, len(h.VDSO.Layout), h.VDSO.Sha256[:min(8, len(h.VDSO.Sha256))])
	}
	add("vDSO identity", h.VDSO != nil, vdso, vdso,
		"tasks cannot be restored here: their vDSO cannot be matched", true)
	add("time namespaces", h.TimeNS, "CONFIG_TIME_NS: clocks can be offset for a restored task",
		note(compat.FeatureTimeNS), "CLOCK_MONOTONIC and CLOCK_BOOTTIME jump for a moved task", false)
	add("clone3 set_tid", h.Clone3SetTID, "restored tasks keep their PIDs and TIDs",
		note(compat.FeatureClone3),
		"PIDs and TIDs change on restore: multi-threaded tasks are rejected, single-threaded ones only with --allow-new-ids", false)
	add("CAP_CHECKPOINT_RESTORE", h.CapCheckpointRestore, "the agent holds CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN",
		"the agent holds neither CAP_CHECKPOINT_RESTORE nor CAP_SYS_ADMIN",
		"no PR_SET_MM_MAP and no set_tid: tasks cannot be restored faithfully", true)
	add("CAP_SYS_RESOURCE", h.CapSysResource, "the agent holds CAP_SYS_RESOURCE",
		"the agent lacks CAP_SYS_RESOURCE",
		"rlimits of tasks of other uids are read and set by injected syscalls; pipe buffers above 1 MiB cannot be restored; single-field PR_SET_MM calls fail (PR_SET_MM_MAP is used instead)", false)
	return DoctorReport{Caps: h, Checks: cs}
}
