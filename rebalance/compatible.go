package rebalance

import (
	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// DefaultCompatible is the compatibility a Config without Compatible uses:
// compat.Decide answers ACCEPT or TRANSLATE. It ignores what only the
// destination knows at move time (its PIDs in use: compat.DecidePIDs), so a
// proposed move can still be refused there.
func DefaultCompatible(m *image.Manifest, h *compat.HostCaps) bool {
	switch compat.Decide(m, h).GetKind() {
	case image.Verdict_ACCEPT, image.Verdict_TRANSLATE:
		return true
	}
	return false
}
