package compat

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/migrated/migrated/image"
)

// ErrIncompleteTask is the sentinel of a Task that lacks what a Manifest is
// made of (a header, an arch, threads).
var ErrIncompleteTask = errors.New("task image incomplete")

// NewManifest derives a task's capability manifest from its captured image,
// so that the fields Decide reads are filled the same way by every caller:
//
//   - header: a copy of the task's; an empty byte order, word size or page
//     size is filled from what the arch implies and AT_PAGESZ, and the ABI
//     too where the arch has only one (ppc64 big-endian runs ELFv1 and
//     ELFv2: the capture must say which);
//   - hwcap, hwcap2: AT_HWCAP and AT_HWCAP2 of the task's auxv (mm.auxv);
//   - capabilities and xstate_features: Capabilities of every thread's
//     register sets, OR'ed, plus CAP_RSEQ, CAP_ROBUST_LIST (a thread
//     registered one) and CAP_SHARED_ANON (a shared anonymous VMA);
//   - fd_kinds: each kind once, in the order met; tids: the threads' ids,
//     the leader first; regsets: every set name met; uid: the real uid;
//     needs_compat: a 32-bit arch.
//
// What the image cannot tell stays for the caller: memory_bytes,
// allow_new_ids, CAP_WATCHPOINT and CAP_TIMENS.
func NewManifest(t *image.Task) (*image.Manifest, error) {
	if t.GetHeader() == nil {
		return nil, fmt.Errorf("manifest: no header: %w", ErrIncompleteTask)
	}
	hd := proto.Clone(t.GetHeader()).(*image.Header)
	info, ok := archInfos[hd.GetArch()]
	if !ok {
		return nil, fmt.Errorf("manifest: arch %s: %w", archName(hd.GetArch()), ErrIncompleteTask)
	}
	if len(t.GetThreads()) == 0 {
		return nil, fmt.Errorf("manifest: no threads: %w", ErrIncompleteTask)
	}
	if hd.Endian == image.Endian_ENDIAN_UNSPECIFIED {
		hd.Endian = info.endian
	}
	if hd.WordSize == 0 {
		hd.WordSize = info.wordSize
	}
	if hd.Abi == image.ABI_ABI_UNSPECIFIED && len(info.abis) == 1 {
		hd.Abi = info.abis[0]
	}
	m := &image.Manifest{Header: hd, NeedsCompat: info.compat32}

	if auxv := t.GetMm().GetAuxv(); len(auxv) > 0 {
		order, word, err := AuxvLayout(hd.GetArch())
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		entries, err := ParseAuxv(auxv, order, word)
		if err != nil {
			return nil, fmt.Errorf("manifest: task auxv: %w", err)
		}
		ac, err := CapsFromAuxv(entries)
		if err != nil {
			return nil, fmt.Errorf("manifest: task auxv: %w", err)
		}
		m.Hwcap, m.Hwcap2 = ac.HWCap, ac.HWCap2
		if hd.PageSize == 0 {
			hd.PageSize = ac.PageSize
		}
	}

	for _, th := range t.GetThreads() {
		m.Tids = append(m.Tids, th.GetTid())
		caps, xstate, err := Capabilities(hd.GetArch(), th.GetRegsets())
		if err != nil {
			return nil, fmt.Errorf("manifest: thread %d: %w", th.GetTid(), err)
		}
		m.Capabilities |= caps
		m.XstateFeatures |= xstate
		for _, r := range th.GetRegsets() {
			if name := r.GetName(); name != "" && !slices.Contains(m.Regsets, name) {
				m.Regsets = append(m.Regsets, name)
			}
		}
		if th.GetRseq().GetAddr() != 0 {
			m.Capabilities |= bit(image.Cap_CAP_RSEQ)
		}
		if th.GetRobustList().GetHead() != 0 {
			m.Capabilities |= bit(image.Cap_CAP_ROBUST_LIST)
		}
	}
	for _, v := range t.GetVmas() {
		if v.GetKind() == image.VMAKind_VMA_ANON_SHARED {
			m.Capabilities |= bit(image.Cap_CAP_SHARED_ANON)
		}
	}
	for _, fd := range t.GetFds() {
		if !slices.Contains(m.FdKinds, fd.GetKind()) {
			m.FdKinds = append(m.FdKinds, fd.GetKind())
		}
	}
	if uids := t.GetCreds().GetUids(); len(uids) > 0 {
		m.Uid = uids[0]
	}
	return m, nil
}
