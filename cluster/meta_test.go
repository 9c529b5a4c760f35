package cluster

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

func amd64Meta() Meta {
	return Meta{
		Caps: compat.HostCaps{
			Arch: image.Arch_ARCH_AMD64, Endian: image.Endian_ENDIAN_LITTLE, PageSize: 4096,
			HWCap: 0x178bebff, Platform: "x86_64", Run64: true, KernelRelease: "6.18.44-fc-v782",
			VDSO: &image.VDSOIdentity{
				Sha256:   bytes.Repeat([]byte{0xdd}, 32),
				VdsoSize: 8192,
				Layout: []*image.SpecialMapping{
					{Name: "[vvar]", Offset: -24576, Size: 16384},
					{Name: "[vvar_vclock]", Offset: -8192, Size: 8192},
					{Name: "[vdso]", Size: 8192},
				},
			},
			DirtyTrackers: []string{"uffd-wp", "hash"}, TimeNS: true, Clone3SetTID: true,
			CapCheckpointRestore: true, XStateFeatures: 0xe7, Regsets: []string{"prstatus", "fpregs", "xstate"},
		},
		QUIC:        netip.MustParseAddrPort("127.0.0.2:7947"),
		Load:        [3]float64{0.25, 1.5, 12.07},
		FreeMemory:  22 << 30,
		TotalMemory: 24 << 30,
		CPUs:        2,
		Tasks:       3,
	}
}

func ppc64Meta() Meta {
	return Meta{
		Caps: compat.HostCaps{
			Arch: image.Arch_ARCH_PPC64, Endian: image.Endian_ENDIAN_BIG, PageSize: 65536,
			HWCap: 0xdc0065c0, HWCap2: 0xbef00000, Platform: "power9", Compat32: true, Run64: true,
			KernelRelease: "6.1.158", DirtyTrackers: []string{"soft-dirty", "hash"},
			CapSysResource: true, CapCheckpointRestore: true,
			Regsets: []string{"prstatus", "fpregs", "vmx", "vsx", "ppr", "dscr", "tar", "ebb", "pmu"},
		},
		QUIC: netip.MustParseAddrPort("[fd00::1]:443"),
	}
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    Meta
	}{
		{"amd64 full", amd64Meta()},
		{"ppc64 no vdso", ppc64Meta()},
		{"minimal", Meta{Caps: compat.HostCaps{PageSize: 4096}}},
		{"leaving", Meta{Caps: compat.HostCaps{PageSize: 4096}, Leaving: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxMetaSize {
				t.Fatalf("%d bytes", len(b))
			}
			t.Logf("%d bytes", len(b))
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Caps.VDSO == nil, tt.m.Caps.VDSO == nil) ||
				got.Caps.VDSO != nil && got.Caps.VDSO.String() != tt.m.Caps.VDSO.String() {
				t.Errorf("vdso %v, want %v", got.Caps.VDSO, tt.m.Caps.VDSO)
			}
			got.Caps.VDSO, tt.m.Caps.VDSO = nil, nil
			if !reflect.DeepEqual(*got, tt.m) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, tt.m)
			}
		})
	}
}

func TestMetaSizeLimit(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Meta)
	}{
		{"long kernel", func(m *Meta) { m.Caps.KernelRelease = strings.Repeat("k", 200) }},
		{"many regsets", func(m *Meta) {
			for i := 0; i < 40; i++ {
				m.Caps.Regsets = append(m.Caps.Regsets, "r")
			}
		}},
		{"over 512 in total", func(m *Meta) {
			for i := 0; i < 30; i++ {
				m.Caps.Regsets = append(m.Caps.Regsets, strings.Repeat("x", 20))
			}
		}},
	}
	for _, tt := range tests {
		m := amd64Meta()
		tt.mutate(&m)
		if b, err := m.Encode(); !errors.Is(err, ErrMetaTooLarge) {
			t.Errorf("%s: %d bytes, err %v; want ErrMetaTooLarge", tt.name, len(b), err)
		}
	}
	if _, err := DecodeMeta(make([]byte, MaxMetaSize+1)); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("decoder accepted %d bytes", MaxMetaSize+1)
	}
}

func TestDecodeMetaErrors(t *testing.T) {
	good, err := amd64Meta().Encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMetaMalformed},
		{"version 2", append([]byte{2}, good[1:]...), ErrMetaVersion},
		{"truncated", good[:len(good)-1], ErrMetaMalformed},
		{"half", good[:len(good)/2], ErrMetaMalformed},
		{"page shift 63", append(append([]byte{}, good[:4]...), append([]byte{63}, good[5:]...)...), ErrMetaMalformed},
	}
	for _, tt := range tests {
		if _, err := DecodeMeta(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// Fields appended by a later writer are skipped.
	if _, err := DecodeMeta(append(bytes.Clone(good), 1, 2, 3)); err != nil {
		t.Errorf("trailing bytes: %v", err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{amd64Meta(), ppc64Meta()} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0xff, 1, 1, 12})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		// What decodes re-encodes, within the limit, to the same meaning.
		b2, err := m.Encode()
		if err != nil {
			if errors.Is(err, ErrMetaTooLarge) {
				t.Fatalf("decoded metadata does not re-encode: %v", err)
			}
			return // e.g. a zero page size is decodable but not encodable
		}
		m2, err := DecodeMeta(b2)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		b3, _ := m2.Encode()
		if !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable")
		}
	})
}

func TestParseLoad(t *testing.T) {
	l, err := ParseLoadavg([]byte("0.52 1.05 0.98 2/312 12345\n"))
	if err != nil || l != [3]float64{0.52, 1.05, 0.98} {
		t.Errorf("%v %v", l, err)
	}
	for _, bad := range []string{"", "1 2", "a b c", "-1 0 0 1/1 1"} {
		if _, err := ParseLoadavg([]byte(bad)); err == nil {
			t.Errorf("ParseLoadavg(%q) accepted", bad)
		}
	}
	avail, total, err := ParseMeminfo([]byte("MemTotal:       24554884 kB\nMemFree:        20000000 kB\nMemAvailable:   22000000 kB\n"))
	if err != nil || avail != 22000000<<10 || total != 24554884<<10 {
		t.Errorf("%d %d %v", avail, total, err)
	}
	for _, bad := range []string{"", "MemTotal: 1 kB\n", "MemTotal: x kB\nMemAvailable: 1 kB\n", "MemTotal: 1 MB\nMemAvailable: 1 kB\n"} {
		if _, _, err := ParseMeminfo([]byte(bad)); err == nil {
			t.Errorf("ParseMeminfo(%q) accepted", bad)
		}
	}
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte("0.52 1.05 0.98 2/312 12345\n"))
	f.Add([]byte("MemTotal:       24554884 kB\nMemAvailable:   22000000 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParseLoadavg(b); err == nil {
			for _, v := range l {
				if !(v >= 0 && v <= 1e9) {
					t.Fatalf("load %v", v)
				}
			}
		}
		ParseMeminfo(b)
	})
}

func TestSecret(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSecret(FormatSecret(s))
	if err != nil || !bytes.Equal(got, s) {
		t.Fatalf("%x %v", got, err)
	}
	for _, bad := range []string{"", "!!!", FormatSecret(s[:16])} {
		if _, err := ParseSecret(bad); !errors.Is(err, ErrSecret) {
			t.Errorf("ParseSecret(%q): %v", bad, err)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	s, _ := NewSecret()
	dir := t.TempDir()
	tests := []struct {
		name string
		text string
		mode os.FileMode
		ok   bool
	}{
		{"private", FormatSecret(s), 0o600, true},
		{"group-readable", FormatSecret(s), 0o640, true},
		{"world-readable", FormatSecret(s), 0o644, false},
		{"short", FormatSecret(s[:31]), 0o600, false},
		{"not base64", "secret\n", 0o600, false},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.name)
		if err := os.WriteFile(path, []byte(tt.text), tt.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tt.mode)
		got, err := ReadSecretFile(path)
		if tt.ok != (err == nil) || tt.ok && !bytes.Equal(got, s) {
			t.Errorf("%s: %x %v", tt.name, got, err)
		}
		if err != nil && !errors.Is(err, ErrSecret) {
			t.Errorf("%s: %v does not wrap ErrSecret", tt.name, err)
		}
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
