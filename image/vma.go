package image

// PagesTravel tells whether a VMA's page contents travel at all: file-backed
// shared mappings keep their data in the file, and the kernel's special
// mappings ([vdso], [vvar], [vvar_vclock], [vsyscall]) are the
// destination's own.
func (v *VMA) PagesTravel() bool {
	if v.GetDeleted() {
		return true // the file is gone: its contents travel
	}
	switch v.GetKind() {
	case VMAKind_VMA_FILE_SHARED, VMAKind_VMA_VDSO, VMAKind_VMA_VVAR,
		VMAKind_VMA_VVAR_VCLOCK, VMAKind_VMA_VSYSCALL:
		return false
	}
	return true
}

// Special tells the kernel-provided mappings the destination does not map itself.
func (v *VMA) Special() bool {
	switch v.GetKind() {
	case VMAKind_VMA_VDSO, VMAKind_VMA_VVAR, VMAKind_VMA_VVAR_VCLOCK, VMAKind_VMA_VSYSCALL:
		return true
	}
	return false
}
