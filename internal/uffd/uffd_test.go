package uffd

import (
	"runtime"
	"slices"
	"testing"
)

func TestIoctlNumbers(t *testing.T) {
	// Values as the kernel's headers compute them: a C program printing
	// UFFDIO_* from <linux/userfaultfd.h> and _IOWR('f', 16, 96 bytes),
	// compiled with gcc (amd64) and powerpc64le-linux-gnu-gcc (-S).
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"generic UFFDIO_API", GenericIOC.IOWR(ioctlType, apiNr, 24), 0xc018aa3f},
		{"generic UFFDIO_REGISTER", GenericIOC.IOWR(ioctlType, registerNr, 32), 0xc020aa00},
		{"generic UFFDIO_UNREGISTER", GenericIOC.IOR(ioctlType, unregisterNr, 16), 0x8010aa01},
		{"generic UFFDIO_WRITEPROTECT", GenericIOC.IOWR(ioctlType, writeprotectNr, 24), 0xc018aa06},
		{"generic PAGEMAP_SCAN", GenericIOC.IOWR(pagemapScanType, pagemapScanNr, 96), 0xc0606610},
		{"powerpc UFFDIO_API", PowerPCIOC.IOWR(ioctlType, apiNr, 24), 0xc018aa3f},
		{"powerpc UFFDIO_UNREGISTER", PowerPCIOC.IOR(ioctlType, unregisterNr, 16), 0x4010aa01},
		{"powerpc PAGEMAP_SCAN", PowerPCIOC.IOWR(pagemapScanType, pagemapScanNr, 96), 0xc0606610},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

// TestHostIoctlNumbers checks the numbers this build uses (run it under
// qemu-ppc64le/qemu-ppc64 to check the powerpc build).
func TestHostIoctlNumbers(t *testing.T) {
	wantUnregister := uintptr(0x8010aa01)
	if runtime.GOARCH == "ppc64" || runtime.GOARCH == "ppc64le" {
		wantUnregister = 0x4010aa01
	}
	got := []uintptr{ReqAPI, ReqRegister, ReqUnregister, ReqWriteprotect, ReqPagemapScan}
	want := []uintptr{0xc018aa3f, 0xc020aa00, wantUnregister, 0xc018aa06, 0xc0606610}
	if !slices.Equal(got, want) {
		t.Errorf("%s: request numbers %#x, want %#x", runtime.GOARCH, got, want)
	}
}
