package power

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAptMirror runs power_apt_mirror of lib.sh (what kernel-le.sh uses to
// find the archive) over apt configurations written for each case.
func TestAptMirror(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	tests := []struct {
		name  string
		files map[string]string // path under the apt etc dir -> contents
		want  string            // "URI SIGNED-BY", or "" when none must be found
	}{
		{
			name: "deb822 main suites",
			files: map[string]string{"sources.list.d/debian.sources": `Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
`},
			want: "http://mirror.invalid/debian /usr/share/keyrings/debian-archive-keyring.gpg",
		},
		{
			name: "deb822 security stanza first, several URIs",
			files: map[string]string{"sources.list.d/debian.sources": `Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security

Types: deb deb-src
URIs: http://one.invalid/debian http://two.invalid/debian
Suites: bookworm
`},
			want: "http://one.invalid/debian",
		},
		{
			name: "deb822 disabled and source-only stanzas are skipped, classic list used",
			files: map[string]string{
				"sources.list.d/a.sources": "Types: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\nEnabled: no\n\nTypes: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n",
				"sources.list":             "deb http://classic.invalid/debian bookworm main contrib\n",
			},
			want: "http://classic.invalid/debian",
		},
		{
			name: "classic with options",
			files: map[string]string{"sources.list": "# comment\ndeb-src http://src.invalid/debian bookworm main\n" +
				"deb http://sec.invalid/debian-security bookworm-security main\n" +
				"deb [arch=amd64 signed-by=/etc/apt/keys/k.gpg] http://opt.invalid/debian bookworm main\n"},
			want: "http://opt.invalid/debian /etc/apt/keys/k.gpg",
		},
		{
			name:  "classic list in sources.list.d",
			files: map[string]string{"sources.list.d/x.list": "deb http://d.invalid/debian bookworm main\n"},
			want:  "http://d.invalid/debian",
		},
		{
			name:  "no bookworm suite",
			files: map[string]string{"sources.list": "deb http://x.invalid/debian trixie main\n"},
		},
		{
			name: "nothing",
		},
	}
	lib := filepath.Join(HarnessDir(), "lib.sh")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			etc := t.TempDir()
			os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755)
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command("bash", "-c", `. "$1" && power_apt_mirror "$2"`, "test", lib, etc).Output()
			got := strings.TrimSpace(string(out))
			if tc.want == "" {
				if err == nil {
					t.Errorf("found %q, want failure", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
