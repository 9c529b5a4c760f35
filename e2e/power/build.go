package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Arch names a guest userland target.
const (
	ArchPPC64LE = "ppc64le" // 64-bit little-endian, ELFv2
	ArchPPC64   = "ppc64"   // 64-bit big-endian, ELFv1
	ArchPPC     = "ppc"     // 32-bit big-endian, C only (Go has no port)
)

// ErrUnsupportedArch is returned for an architecture name the harness does not know.
var ErrUnsupportedArch = errors.New("power: unsupported architecture")

// CCompiler returns the name of the Debian cross compiler for arch (BuildC
// finds it where deps.sh unpacked it).
func CCompiler(arch string) (string, error) {
	switch arch {
	case ArchPPC64LE:
		return "powerpc64le-linux-gnu-gcc", nil
	case ArchPPC64:
		return "powerpc64-linux-gnu-gcc", nil
	case ArchPPC:
		return "powerpc-linux-gnu-gcc", nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedArch, arch)
}

// HarnessDir is the directory of this package's sources (e2e/power), where
// the scripts, the C sources and testdata are.
func HarnessDir() string {
	return filepath.Join(ModuleRoot(), "e2e", "power")
}

// ModuleRoot is the root of the migrated module (the repository): from this
// file's path, or, in a -trimpath build, from "go env GOMOD".
func ModuleRoot() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Dir(filepath.Dir(filepath.Dir(file)))
	}
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if mod := strings.TrimSpace(string(out)); filepath.IsAbs(mod) {
			return filepath.Dir(mod)
		}
	}
	wd, _ := os.Getwd()
	return wd
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}

// BuildGo cross-builds the Go package pkg (an import path, or a directory
// relative to the module root like "./cmd/migrated") as a static binary for
// arch (ppc64le or ppc64) into out.
func BuildGo(ctx context.Context, arch, pkg, out string) error {
	if arch != ArchPPC64LE && arch != ArchPPC64 {
		return fmt.Errorf("%w for Go: %q", ErrUnsupportedArch, arch)
	}
	return run(ctx, ModuleRoot(), []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=0"},
		"go", "build", "-trimpath", "-o", out, pkg)
}

// BuildC compiles C sources into a static binary for arch (ppc64le, ppc64 or
// ppc) with the Debian cross compilers. flags go before the sources.
func BuildC(ctx context.Context, arch, out string, flags []string, srcs ...string) error {
	cc, err := CCompiler(arch)
	if err != nil {
		return err
	}
	// deps.sh unpacks the drivers into the cache (they conflict with
	// gcc-multilib as Debian packages); an installed one is the fallback.
	path := filepath.Join(CacheDir(), "xgcc", "usr", "bin", cc)
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath(cc); err != nil {
			return fmt.Errorf("power: %s not found in %s or PATH (run e2e/power/deps.sh): %w",
				cc, filepath.Dir(filepath.Join(CacheDir(), "xgcc", "usr", "bin", cc)), err)
		}
	}
	args := append([]string{"-static", "-O2", "-Wall", "-o", out}, flags...)
	return run(ctx, "", nil, path, append(args, srcs...)...)
}
