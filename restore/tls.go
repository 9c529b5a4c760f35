package restore

import (
	"fmt"

	"github.com/migrated/migrated/inject"
)

// setThreadAreas installs an i386 thread's TLS descriptors (its NT_386_TLS
// register set: struct user_desc entries) one by one with
// PTRACE_SET_THREAD_AREA, after its selectors are set: writing the register
// set would install the descriptors but leave the thread's saved GS base
// stale, which CPUs with FSGSBASE then load (see inject.Thread.SetThreadArea).
func setThreadAreas(th *inject.Thread, tls []byte) error {
	if len(tls)%inject.UserDescSize != 0 {
		return fmt.Errorf("%w: NT_386_TLS of %d bytes is not whole user_desc entries", ErrBadImage, len(tls))
	}
	for off := 0; off < len(tls); off += inject.UserDescSize {
		if err := th.SetThreadArea(tls[off : off+inject.UserDescSize]); err != nil {
			return fmt.Errorf("register set tls: %w", err)
		}
	}
	return nil
}
