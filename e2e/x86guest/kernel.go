package x86guest

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is Debian's amd64 kernel, unpacked from its package, and the
// modules the guest loads (dependencies first).
type Kernel struct {
	Vmlinuz string
	Modules []string // host paths of .ko files, in load order
	Package string   // the kernel package, "name version"
}

// wantModules are what the guest needs beyond the built-in drivers: virtio
// PCI and 9p for the host's root, veth for the namespace hosts. Their
// dependencies are found from each module's .modinfo.
var wantModules = []string{"virtio_pci", "9pnet_virtio", "9p", "veth"}

// CacheDir is where the kernel package is kept: $MIGRATED_E2E_CACHE, else
// $XDG_CACHE_HOME/migrated-e2e, else /var/cache/migrated-e2e (as the POWER
// tier), under amd64/.
func CacheDir() string {
	base := "/var/cache/migrated-e2e"
	if d := os.Getenv("MIGRATED_E2E_CACHE"); d != "" {
		base = d
	} else if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		base = filepath.Join(d, "migrated-e2e")
	}
	return filepath.Join(base, "amd64")
}

// EnsureKernel downloads the package that linux-image-amd64 depends on
// through the machine's own apt configuration (this machine is amd64, so no
// private configuration is needed), once, and unpacks it in the cache.
func EnsureKernel(ctx context.Context, logf func(string, ...any)) (*Kernel, error) {
	pkg, err := kernelPackage(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(CacheDir(), pkg)
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		logf("downloading %s", pkg)
		// apt runs the download as _apt, which cannot write to a root-owned
		// directory; let it.
		os.Chmod(dir, 0o777)
		if out, err := command(ctx, dir, "apt-get", "download", "-q", pkg); err != nil {
			return nil, fmt.Errorf("x86guest: apt-get download %s: %w\n%s", pkg, err, out)
		}
		debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("x86guest: apt-get download %s left %d packages", pkg, len(debs))
		}
		if out, err := command(ctx, dir, "dpkg-deb", "-x", debs[0], root); err != nil {
			return nil, fmt.Errorf("x86guest: unpack %s: %w\n%s", debs[0], err, out)
		}
		if err := os.Remove(debs[0]); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "complete"), []byte(filepath.Base(debs[0])+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	k := &Kernel{Package: pkg}
	if b, err := os.ReadFile(filepath.Join(dir, "complete")); err == nil {
		k.Package = strings.TrimSuffix(strings.TrimSpace(string(b)), ".deb")
	}
	vm, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(vm) != 1 {
		return nil, fmt.Errorf("x86guest: %s has %d vmlinuz files", pkg, len(vm))
	}
	k.Vmlinuz = vm[0]
	if k.Modules, err = moduleOrder(filepath.Join(root, "lib", "modules"), wantModules); err != nil {
		return nil, err
	}
	return k, nil
}

// kernelPackage resolves the meta package linux-image-amd64 to the image
// package it depends on.
func kernelPackage(ctx context.Context) (string, error) {
	out, err := command(ctx, "", "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", fmt.Errorf("x86guest: apt-cache depends linux-image-amd64: %w\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(name, "linux-image-") {
			return strings.TrimSpace(name), nil
		}
	}
	return "", fmt.Errorf("x86guest: linux-image-amd64 names no image package:\n%s", out)
}

func command(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// moduleOrder finds the wanted modules under modDir and returns them with
// their dependencies (from the "depends=" entry of each module's .modinfo
// section) in an order the kernel can load them.
func moduleOrder(modDir string, want []string) ([]string, error) {
	paths := map[string]string{}
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(d.Name(), ".ko"); ok {
			paths[strings.ReplaceAll(name, "-", "_")] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("x86guest: modules: %w", err)
	}
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string) error
	visit = func(name string) error {
		name = strings.ReplaceAll(name, "-", "_")
		switch state[name] {
		case 1:
			return fmt.Errorf("x86guest: module dependency cycle at %s", name)
		case 2:
			return nil
		}
		p, ok := paths[name]
		if !ok {
			return fmt.Errorf("x86guest: module %s: %w", name, fs.ErrNotExist)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, w := range want {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads "depends=a,b" from a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("x86guest: %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("x86guest: %s has no .modinfo", path)
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("x86guest: %s: %w", path, err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, errors.New("x86guest: " + path + ": no depends= in .modinfo")
}
