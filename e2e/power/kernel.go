package power

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CacheDir is where kernel-le.sh and kernel-be.sh keep the guest kernels:
// $MIGRATED_E2E_CACHE, else $XDG_CACHE_HOME/migrated-e2e, else
// /var/cache/migrated-e2e (the same rule as lib.sh).
func CacheDir() string {
	if d := os.Getenv("MIGRATED_E2E_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "migrated-e2e")
	}
	return "/var/cache/migrated-e2e"
}

// Kernel is a guest kernel and the modules /init must load, in order.
type Kernel struct {
	Arch    string
	Vmlinux string
	// Modules are host paths of .ko files, in load order; empty when the
	// drivers are built in.
	Modules []string
	// Source says where the kernel came from (package name and version, or
	// how it was built).
	Source string
}

// leModules is the load order of the virtio-net stack of Debian's ppc64el kernel.
var leModules = []string{"virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
	"virtio_pci", "failover", "net_failover", "virtio_net"}

// EnsureKernel makes sure the kernel for arch is in the cache, running
// kernel-le.sh or kernel-be.sh (both are quick when cached), and returns it.
func EnsureKernel(ctx context.Context, arch string) (*Kernel, error) {
	var script, dir string
	switch arch {
	case ArchPPC64LE:
		script, dir = "kernel-le.sh", "ppc64le"
	case ArchPPC64:
		script, dir = "kernel-be.sh", "ppc64"
	default:
		return nil, fmt.Errorf("%w for a guest kernel: %q", ErrUnsupportedArch, arch)
	}
	if err := run(ctx, HarnessDir(), nil, "bash", filepath.Join(HarnessDir(), script)); err != nil {
		return nil, fmt.Errorf("power: guest kernel for %s: %w", arch, err)
	}
	k := &Kernel{Arch: arch, Vmlinux: filepath.Join(CacheDir(), dir, "vmlinux")}
	srcFile := "source"
	if arch == ArchPPC64LE {
		srcFile = "package"
		for _, m := range leModules {
			k.Modules = append(k.Modules, filepath.Join(CacheDir(), dir, "modules", m+".ko"))
		}
	}
	if b, err := os.ReadFile(filepath.Join(CacheDir(), dir, srcFile)); err == nil {
		k.Source = strings.TrimSpace(string(b))
	}
	for _, p := range append([]string{k.Vmlinux}, k.Modules...) {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("power: guest kernel for %s: %w", arch, err)
		}
	}
	return k, nil
}
