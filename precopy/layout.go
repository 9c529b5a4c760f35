package precopy

import (
	"github.com/migrated/migrated/image"
	"google.golang.org/protobuf/proto"
)

// Layout is the task's address space at the start of a round, and how it
// changed since the previous round's Layout.
//
// The destination applies it like this: the contents of every range in
// Fresh are void (map it anew, as the VMA there says), addresses no VMA
// covers any more are unmapped, and the other addresses keep their
// contents and take the protection and flags of the VMA now covering them
// (a split or a merge of VMAs moves no data). The pages sent in the round
// then land on that layout.
type Layout struct {
	Round int
	// VMAs is the whole list, kernel-provided and file-shared ones too.
	VMAs []*image.VMA
	// Added are VMAs with no VMA of the previous layout at the same start
	// address, or whose identity (kind, file, offset) changed; Removed the
	// previous VMAs that are gone or were replaced. Changed are VMAs at the
	// same start whose end, protection or flags changed.
	Added, Removed []*image.VMA
	Changed        []VMAChange
	// Fresh are the address ranges whose contents are sent whole in this
	// round (every page that holds data): new mappings, replaced mappings,
	// ranges that were not mapped before.
	Fresh Ranges
}

// VMAChange is a VMA whose extent, protection or flags changed in place.
type VMAChange struct {
	Old, New *image.VMA
}

// sameIdentity tells whether two VMAs at the same start map the same thing
// (so the destination may keep the contents).
func sameIdentity(a, b *image.VMA) bool {
	return a.Kind == b.Kind && a.Path == b.Path && a.Shmid == b.Shmid &&
		a.Pgoff == b.Pgoff && proto.Equal(a.File, b.File) &&
		a.Flags&(mapShared|mapPrivate) == b.Flags&(mapShared|mapPrivate)
}

// MAP_SHARED and MAP_PRIVATE as image.VMA.Flags holds them (the kernel's values).
const (
	mapShared  = 0x01
	mapPrivate = 0x02
)

// diffLayout compares two VMA lists (sorted by address, as /proc gives
// them); replaced lists the ranges of VMAs replaced by a different mapping.
func diffLayout(round int, prev, cur []*image.VMA) (l *Layout, replaced Ranges) {
	l = &Layout{Round: round, VMAs: cur}
	byStart := make(map[uint64]*image.VMA, len(prev))
	for _, v := range prev {
		byStart[v.Start] = v
	}
	seen := make(map[uint64]bool, len(cur))
	var rep []Range
	for _, v := range cur {
		o := byStart[v.Start]
		switch {
		case o == nil:
			l.Added = append(l.Added, v)
		case !sameIdentity(o, v):
			seen[v.Start] = true
			l.Removed = append(l.Removed, o)
			l.Added = append(l.Added, v)
			rep = append(rep, Range{v.Start, v.End})
		default:
			seen[v.Start] = true
			if o.End != v.End || o.Prot != v.Prot || o.Flags != v.Flags || o.Madvise != v.Madvise {
				l.Changed = append(l.Changed, VMAChange{Old: o, New: v})
			}
		}
	}
	for _, v := range prev {
		if !seen[v.Start] {
			l.Removed = append(l.Removed, v)
		}
	}
	return l, normalize(rep)
}
