package power

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestInitramfsWithCpio writes an archive and reads it back with GNU cpio,
// the reference reader for the newc format.
func TestInitramfsWithCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed (e2e/power/deps.sh installs it)")
	}
	tests := []struct {
		name  string
		build func(r *Initramfs) error
		list  []string          // names cpio must list, in any order
		files map[string]string // regular files and their contents
	}{
		{
			name:  "empty",
			build: func(*Initramfs) error { return nil },
		},
		{
			name: "init and console",
			build: func(r *Initramfs) error {
				if err := r.AddFile("/init", 0o755, []byte("#!init\n")); err != nil {
					return err
				}
				return r.AddCharDev("dev/console", 0o600, 5, 1)
			},
			list:  []string{"init", "dev", "dev/console"},
			files: map[string]string{"init": "#!init\n"},
		},
		{
			name: "nested, odd sizes for padding, symlink",
			build: func(r *Initramfs) error {
				if err := r.AddFile("a/b/c/one", 0o644, []byte("1")); err != nil {
					return err
				}
				if err := r.AddFile("a/b/two", 0o644, []byte("twenty-two bytes long.")); err != nil {
					return err
				}
				if err := r.AddFile("a/three", 0o644, nil); err != nil {
					return err
				}
				return r.AddSymlink("a/link", "b/two")
			},
			list:  []string{"a", "a/b", "a/b/c", "a/b/c/one", "a/b/two", "a/three", "a/link"},
			files: map[string]string{"a/b/c/one": "1", "a/b/two": "twenty-two bytes long.", "a/three": ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewInitramfs()
			if err := tc.build(r); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := r.WriteTo(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) || n%4 != 0 {
				t.Fatalf("wrote %d bytes, counted %d (must be a multiple of 4)", buf.Len(), n)
			}
			cmd := exec.Command("cpio", "-it", "--quiet")
			cmd.Stdin = bytes.NewReader(buf.Bytes())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("cpio -it: %v\n%s", err, out)
			}
			got := strings.Fields(string(out))
			sort.Strings(got)
			want := append([]string(nil), tc.list...)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("cpio lists %q, want %q", got, want)
			}
			dir := t.TempDir()
			cmd = exec.Command("cpio", "-id", "--quiet", "--no-absolute-filenames")
			cmd.Dir = dir
			cmd.Stdin = bytes.NewReader(buf.Bytes())
			if out, err := cmd.CombinedOutput(); err != nil && os.Geteuid() == 0 {
				t.Fatalf("cpio -id: %v\n%s", err, out)
			}
			for name, content := range tc.files {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(b) != content {
					t.Errorf("%s: %q, %v; want %q", name, b, err, content)
				}
			}
		})
	}
}

func TestInitramfsRejects(t *testing.T) {
	tests := []struct {
		name  string
		build func(r *Initramfs) error
	}{
		{"empty name", func(r *Initramfs) error { return r.AddFile("", 0o644, nil) }},
		{"root", func(r *Initramfs) error { return r.AddDir("/", 0o755) }},
		{"file as a parent", func(r *Initramfs) error {
			if err := r.AddFile("x", 0o644, nil); err != nil {
				return nil // an unexpected error here fails below as "accepted"
			}
			return r.AddFile("x/y", 0o644, nil)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.build(NewInitramfs()); err == nil {
				t.Error("accepted")
			}
		})
	}
}
