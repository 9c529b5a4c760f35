package compat

import "github.com/migrated/migrated/image"

// HostCaps is what a host can run: everything a destination must know about
// itself to decide on a task's Manifest, and what it advertises in its
// cluster metadata. It is probed once at agent start-up (Probe) and can be
// overridden for tests (a test flag may narrow what a host advertises).
type HostCaps struct {
	// Arch is the native (64-bit) arch of the kernel: ARCH_AMD64, ARCH_PPC64LE, ARCH_PPC64.
	Arch   image.Arch   `json:"arch"`
	Endian image.Endian `json:"endian"`
	// PageSize in bytes, from AT_PAGESZ.
	PageSize uint64 `json:"page_size"`
	// HWCap and HWCap2 are AT_HWCAP/AT_HWCAP2 of the agent's own auxv: what
	// the CPU and kernel offer to a task started here.
	HWCap  uint64 `json:"hwcap"`
	HWCap2 uint64 `json:"hwcap2"`
	// Platform is AT_PLATFORM ("power9", "x86_64").
	Platform string `json:"platform,omitempty"`
	// Compat32 is true when the kernel runs 32-bit tasks (CONFIG_COMPAT /
	// IA32 emulation).
	Compat32 bool `json:"compat32"`
	// Run64 is true when the kernel runs 64-bit tasks (false only on a
	// 32-bit kernel).
	Run64 bool `json:"run64"`
	// KernelRelease is uname -r.
	KernelRelease string `json:"kernel"`
	// VDSO identifies this host's 64-bit vDSO (hash of its bytes and layout).
	VDSO *image.VDSOIdentity `json:"vdso,omitempty"`
	// DirtyTrackers available, best first: "uffd-wp" (userfaultfd async
	// write-protect + PAGEMAP_SCAN), "soft-dirty", "hash" (always).
	DirtyTrackers []string `json:"dirty_trackers"`
	// TimeNS: time namespaces can be created (CONFIG_TIME_NS).
	TimeNS bool `json:"timens"`
	// Clone3SetTID: clone3 with set_tid works (PIDs can be kept).
	Clone3SetTID bool `json:"clone3_set_tid"`
	// CapSysResource: the agent holds CAP_SYS_RESOURCE (prlimit on other uids).
	CapSysResource bool `json:"cap_sys_resource"`
	// CapCheckpointRestore: the agent holds CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN.
	CapCheckpointRestore bool `json:"cap_checkpoint_restore"`
	// XStateFeatures (x86): XCR0 bits the CPU enables (x87, SSE, AVX, AVX-512, PKRU).
	XStateFeatures uint64 `json:"xstate_features,omitempty"`
	// Regsets the kernel offers for a task of the native arch, by name
	// (for example "vsx", "vmx", "tm", "dscr", "tar", "ppr", "ebb", "xstate").
	Regsets []string `json:"regsets,omitempty"`
}
