package workload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// recipe changes whenever the way targets are built changes, so that a
// cached build directory is never reused across recipes.
const recipe = "workload-build-v1"

// cFlags are used for every C workload.
var cFlags = []string{"-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-function", "-pthread"}

// Set is a built set of workloads.
type Set struct {
	// Dir holds the binaries (and chain.py); readable by every uid.
	Dir string
	// Python is the interpreter chain.py runs under.
	Python string

	targets map[string]*target
}

type target struct {
	name   string
	kind   string // "c", "go", "python"
	src    string // relative to the sources directory
	i386   bool
	static bool
	// unavailable says why the target was not built or cannot run here.
	unavailable string
}

func (t *target) file() string {
	if t.kind == "python" {
		return filepath.Base(t.src)
	}
	return strings.ReplaceAll(t.name, "/", "-")
}

var (
	buildOnce sync.Once
	buildSet  *Set
	buildErr  error
)

// Build compiles every workload once per test binary (reusing an earlier
// build of the same sources) and returns the set. It fails the test when a
// present toolchain cannot build a source; a missing toolchain only makes
// the affected workloads skip in Start.
func Build(t testing.TB) *Set {
	t.Helper()
	s, err := Load()
	if err != nil {
		t.Fatalf("build workloads: %v", err)
	}
	return s
}

// Load is Build outside a test: it builds the workloads once per process
// (or finds them already built) and returns the set.
func Load() (*Set, error) {
	buildOnce.Do(func() { buildSet, buildErr = build() })
	return buildSet, buildErr
}

// Names lists every workload, runnable here or not.
func (s *Set) Names() []string {
	var out []string
	for n := range s.targets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Available reports whether name was built and can run on this machine, and
// if not, why.
func (s *Set) Available(name string) (bool, string) {
	tg, ok := s.targets[name]
	if !ok {
		return false, fmt.Sprintf("no workload named %q", name)
	}
	return tg.unavailable == "", tg.unavailable
}

// Command returns the argv prefix that runs name (the binary, or the
// interpreter and the script); the caller appends --dir and the options.
func (s *Set) Command(name string) ([]string, error) {
	tg, ok := s.targets[name]
	if !ok {
		return nil, fmt.Errorf("workload %q: %w", name, ErrUnknown)
	}
	if tg.unavailable != "" {
		return nil, fmt.Errorf("workload %q: %w: %s", name, ErrUnavailable, tg.unavailable)
	}
	p := filepath.Join(s.Dir, tg.file())
	if tg.kind == "python" {
		return []string{s.Python, p}, nil
	}
	return []string{p}, nil
}

// ErrUnknown is returned for a workload name that does not exist.
var ErrUnknown = errors.New("unknown workload")

// ErrUnavailable is returned for a workload this machine cannot build or run.
var ErrUnavailable = errors.New("workload unavailable here")

// sourceDir finds e2e/workloads: $MIGRATED_WORKLOADS_SRC, next to this
// package's source, or above the working directory.
func sourceDir() (string, error) {
	if d := os.Getenv("MIGRATED_WORKLOADS_SRC"); d != "" {
		return d, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Join(filepath.Dir(file), "..", "workloads")
		if _, err := os.Stat(filepath.Join(d, "wl.h")); err == nil {
			return filepath.Clean(d), nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "e2e", "workloads")
		if _, err := os.Stat(filepath.Join(c, "wl.h")); err == nil {
			return c, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("e2e/workloads not found: set MIGRATED_WORKLOADS_SRC")
		}
	}
}

func listTargets(src string) ([]*target, error) {
	ts := []*target{
		{name: "simple", kind: "c", src: "simple.c"},
		{name: "simple-static", kind: "c", src: "simple.c", static: true},
		{name: "simple-i386", kind: "c", src: "simple.c", i386: true},
		{name: "simple-i386-static", kind: "c", src: "simple.c", i386: true, static: true},
		{name: "threads", kind: "c", src: "threads.c"},
		{name: "threads-static", kind: "c", src: "threads.c", static: true},
		{name: "threads-i386", kind: "c", src: "threads.c", i386: true},
		{name: "fpthreads", kind: "c", src: "fpthreads.c"},
		{name: "fpthreads-i386", kind: "c", src: "fpthreads.c", i386: true},
		{name: "fpthreads-i386-static", kind: "c", src: "fpthreads.c", i386: true, static: true},
		{name: "mixed", kind: "c", src: "mixed.c"},
		{name: "gowork", kind: "go", src: "gowork"},
		{name: "chain", kind: "python", src: "chain.py"},
	}
	zs, err := filepath.Glob(filepath.Join(src, "zdtm", "*.c"))
	if err != nil {
		return nil, err
	}
	sort.Strings(zs)
	for _, z := range zs {
		base := strings.TrimSuffix(filepath.Base(z), ".c")
		rel := filepath.Join("zdtm", filepath.Base(z))
		ts = append(ts,
			&target{name: "zdtm/" + base, kind: "c", src: rel},
			&target{name: "zdtm/" + base + "-i386", kind: "c", src: rel, i386: true})
	}
	return ts, nil
}

// ZDTM lists the zdtm programs (64-bit names).
func (s *Set) ZDTM() []string {
	var out []string
	for n, tg := range s.targets {
		if strings.HasPrefix(n, "zdtm/") && !tg.i386 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

type toolchain struct {
	gcc, goTool, python string
	// why each kind of target cannot be built, "" when it can
	noC, noStatic, noI386, noGo, noPython string
	version                               string
}

func runTool(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

func findTools() *toolchain {
	tc := &toolchain{}
	var ver strings.Builder
	if p, err := exec.LookPath("gcc"); err == nil {
		tc.gcc = p
		out, _ := runTool("", nil, p, "--version")
		ver.Write(out)
	} else {
		tc.noC = "gcc not found (Debian package gcc)"
	}
	// go test puts its own toolchain first in PATH; GOROOT is the fallback.
	for _, p := range []string{"go", filepath.Join(runtime.GOROOT(), "bin", "go")} {
		if lp, err := exec.LookPath(p); err == nil {
			tc.goTool = lp
			out, _ := runTool("", nil, lp, "version")
			ver.Write(out)
			break
		}
	}
	if tc.goTool == "" {
		tc.noGo = "the go tool was not found"
	}
	// Debian's interpreter first: a pyenv shim is a shell script in between.
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if lp, err := exec.LookPath(p); err == nil {
			tc.python = lp
			out, _ := runTool("", nil, lp, "--version")
			ver.Write(out)
			break
		}
	}
	if tc.python == "" {
		tc.noPython = "python3 not found (Debian package python3)"
	}
	tc.version = ver.String()
	return tc
}

// probe compiles a trivial program with flags; it reports why not.
func (tc *toolchain) probe(dir, why string, flags ...string) string {
	if tc.noC != "" {
		return tc.noC
	}
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte("#include <errno.h>\n#include <pthread.h>\nint main(void){return errno;}\n"), 0o644); err != nil {
		return err.Error()
	}
	args := append(append([]string{}, flags...), "-pthread", "-o", filepath.Join(dir, "probe"), src)
	if _, err := runTool(dir, nil, tc.gcc, args...); err != nil {
		return why
	}
	return ""
}

// i386Include makes <asm/...> resolvable for gcc -m32: Debian 12 ships the
// (bi-arch) asm headers only under the x86_64 multiarch directory, and
// gcc -m32 does not search it.
func i386Include(dir string) ([]string, error) {
	inc := filepath.Join(dir, "include-i386")
	if err := os.MkdirAll(inc, 0o755); err != nil {
		return nil, err
	}
	const asm = "/usr/include/x86_64-linux-gnu/asm"
	if _, err := os.Stat("/usr/include/asm"); err == nil {
		return nil, nil
	}
	if _, err := os.Stat(asm); err != nil {
		return nil, nil
	}
	if err := os.Symlink(asm, filepath.Join(inc, "asm")); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return []string{"-I" + inc}, nil
}

func cacheKey(src string, ts []*target, tc *toolchain) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%q\n", recipe, tc.version, cFlags)
	for _, t := range ts {
		fmt.Fprintf(h, "%s %s %s %v %v\n", t.name, t.kind, t.src, t.i386, t.static)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash sources: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

func build() (*Set, error) {
	src, err := sourceDir()
	if err != nil {
		return nil, err
	}
	ts, err := listTargets(src)
	if err != nil {
		return nil, err
	}
	tc := findTools()
	key, err := cacheKey(src, ts, tc)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(os.TempDir(), "migrated-workloads-"+key)
	if _, err := os.Stat(filepath.Join(final, "complete")); err != nil {
		if err := buildInto(src, final, ts, tc); err != nil {
			return nil, err
		}
	}
	s := &Set{Dir: final, Python: tc.python, targets: map[string]*target{}}
	noRun := i386Runnable(final)
	for _, t := range ts {
		s.targets[t.name] = t
		if t.unavailable != "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(final, t.file())); err != nil {
			t.unavailable = readReason(final, t)
			continue
		}
		if t.i386 && noRun != "" {
			t.unavailable = noRun
		}
		if t.kind == "python" && tc.noPython != "" {
			t.unavailable = tc.noPython
		}
	}
	return s, nil
}

// readReason reads why a target was skipped at build time (recorded in the
// cache so that later runs skip with the same reason).
func readReason(dir string, t *target) string {
	b, err := os.ReadFile(filepath.Join(dir, t.file()+".skip"))
	if err != nil {
		return "not built"
	}
	return strings.TrimSpace(string(b))
}

// i386Runnable runs the i386 probe binary: some kernels (and VMs) build
// IA32 emulation in but switch it off, and execve then fails with ENOEXEC.
func i386Runnable(dir string) string {
	p := filepath.Join(dir, "probe-i386")
	if _, err := os.Stat(p); err != nil {
		return "" // nothing i386 was built; each target says why
	}
	err := exec.Command(p).Run()
	if errors.Is(err, syscall.ENOEXEC) {
		return "this kernel does not execute i386 programs (execve returns ENOEXEC: IA-32 emulation is off)"
	}
	if err != nil {
		return fmt.Sprintf("i386 probe program does not run: %v", err)
	}
	return ""
}

func buildInto(src, final string, ts []*target, tc *toolchain) error {
	tmp, err := os.MkdirTemp(os.TempDir(), "migrated-workloads-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	scratch := filepath.Join(tmp, ".scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return err
	}
	tc.noStatic = tc.probe(scratch, "static glibc is missing (Debian package libc6-dev)", "-static")
	inc32, err := i386Include(scratch)
	if err != nil {
		return err
	}
	tc.noI386 = tc.probe(scratch, "gcc -m32 cannot build (Debian packages gcc-multilib, libc6-dev-i386)",
		append([]string{"-m32"}, inc32...)...)
	if tc.noI386 == "" {
		if err := os.Rename(filepath.Join(scratch, "probe"), filepath.Join(tmp, "probe-i386")); err != nil {
			return err
		}
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, runtime.NumCPU())
	)
	for _, t := range ts {
		why := ""
		switch {
		case t.kind == "c" && tc.noC != "":
			why = tc.noC
		case t.kind == "c" && t.i386 && tc.noI386 != "":
			why = tc.noI386
		case t.kind == "c" && t.static && tc.noStatic != "":
			why = tc.noStatic
		case t.kind == "go" && tc.noGo != "":
			why = tc.noGo
		}
		if why != "" {
			if err := os.WriteFile(filepath.Join(tmp, t.file()+".skip"), []byte(why+"\n"), 0o644); err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func(t *target) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := buildTarget(src, tmp, t, tc, inc32); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(t)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "complete"), []byte(recipe+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another test binary finished the same build first: use it.
		if _, serr := os.Stat(filepath.Join(final, "complete")); serr == nil {
			return nil
		}
		return fmt.Errorf("install build: %w", err)
	}
	return nil
}

func buildTarget(src, out string, t *target, tc *toolchain, inc32 []string) error {
	dst := filepath.Join(out, t.file())
	switch t.kind {
	case "c":
		args := append([]string{}, cFlags...)
		if t.i386 {
			args = append(append(args, "-m32"), inc32...)
		}
		if t.static {
			args = append(args, "-static")
		}
		args = append(args, "-o", dst, filepath.Join(src, t.src))
		outp, err := runTool(out, nil, tc.gcc, args...)
		if err != nil {
			return fmt.Errorf("build %s: %w", t.name, err)
		}
		if w := bytes.TrimSpace(outp); len(w) > 0 {
			return fmt.Errorf("build %s: compiler warnings:\n%s", t.name, w)
		}
	case "go":
		modRoot := filepath.Join(src, "..", "..")
		_, err := runTool(modRoot, []string{"CGO_ENABLED=0", "GOFLAGS="}, tc.goTool,
			"build", "-o", dst, "./e2e/workloads/"+t.src)
		if err != nil {
			return fmt.Errorf("build %s: %w", t.name, err)
		}
	case "python":
		b, err := os.ReadFile(filepath.Join(src, t.src))
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
		if tc.python != "" {
			if _, err := runTool(out, nil, tc.python, "-m", "py_compile", dst); err != nil {
				return fmt.Errorf("check %s: %w", t.name, err)
			}
			os.RemoveAll(filepath.Join(out, "__pycache__"))
		}
	}
	return nil
}
