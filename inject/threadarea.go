package inject

import (
	"fmt"
	"runtime"
	"unsafe"
)

// ptraceSetThreadArea is PTRACE_SET_THREAD_AREA (arch/x86/include/uapi/asm/ptrace-abi.h),
// available to a 64-bit tracer of a 32-bit task (CONFIG_IA32_EMULATION).
const ptraceSetThreadArea = 26

// UserDescSize is sizeof(struct user_desc) (arch/x86/include/uapi/asm/ldt.h),
// the same for i386 and x86-64, and the size of one NT_386_TLS entry.
const UserDescSize = 16

// SetThreadArea installs one TLS descriptor of a 32-bit x86 thread (desc is
// a struct user_desc; its entry_number says which GDT slot) through
// PTRACE_SET_THREAD_AREA. Unlike writing the NT_386_TLS register set, this
// goes through the kernel's do_set_thread_area, which also updates the
// thread's saved FS/GS base when its FS/GS selector already points at the
// slot. On CPUs with FSGSBASE the kernel restores that saved base after
// loading the selector, so without it a restored i386 thread resumes with
// a GS base of 0 and faults on its first TLS access. Set the thread's
// registers (the selectors) first.
func (th *Thread) SetThreadArea(desc []byte) error {
	if len(desc) != UserDescSize {
		return fmt.Errorf("set_thread_area of %d: a user_desc is %d bytes, not %d", th.TID, UserDescSize, len(desc))
	}
	entry := uint32(desc[0]) | uint32(desc[1])<<8 | uint32(desc[2])<<16 | uint32(desc[3])<<24
	buf := append([]byte(nil), desc...)
	return th.t.Do(func() error {
		err := ptrace(ptraceSetThreadArea, th.TID, uintptr(entry), uintptr(unsafe.Pointer(&buf[0])))
		runtime.KeepAlive(buf)
		if err != nil {
			return fmt.Errorf("set_thread_area %d of %d: %w", entry, th.TID, err)
		}
		return nil
	})
}
