package nshost

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var replyTests = []struct {
	in   string
	want *reply // nil: must be rejected
}{
	{`{"kind":"started","pid":7}`, &reply{Kind: replyStarted, PID: 7}},
	{`{"kind":"exit","status":256}`, &reply{Kind: replyExit, Status: 256}},
	{`{"kind":"exit"}`, &reply{Kind: replyExit}},
	{`{"kind":"error","error":"start x: no such file"}`, &reply{Kind: replyError, Error: "start x: no such file"}},
	{`{"kind":"started"}`, nil},
	{`{"kind":"started","pid":-3}`, nil},
	{`{"kind":"error"}`, nil},
	{`{"kind":"launched","pid":7}`, nil},
	{`{"kind":"exit","status":-1}`, nil},
	{`not json`, nil},
	{``, nil},
}

func TestDecodeReply(t *testing.T) {
	for _, tc := range replyTests {
		got, err := decodeReply([]byte(tc.in))
		if tc.want == nil {
			if !errors.Is(err, errBadMessage) {
				t.Errorf("decodeReply(%q) = %+v, %v; want errBadMessage", tc.in, got, err)
			}
			continue
		}
		if err != nil || *got != *tc.want {
			t.Errorf("decodeReply(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

var requestTests = []struct {
	in string
	ok bool
}{
	{`{"path":"/bin/true","args":["true"],"env":["A=1"],"dir":"/"}`, true},
	{`{"path":"/bin/true","args":["true"]}`, true},
	{`{"path":"/bin/true","args":["true"],"want_pid":300}`, true},
	{`{"path":"/bin/true","args":["true"],"cred":{"uid":65534,"gid":65534,"groups":[1]}}`, true},
	{`{"path":"/bin/true","args":["true"],"cred":{"uid":-1}}`, false},
	{`{"path":"/bin/true","args":["true"],"want_pid":1}`, false},
	{`{"path":"/bin/true","args":["true"],"want_pid":-4}`, false},
	{`{"path":"","args":["true"]}`, false},
	{`{"path":"/bin/true","args":[]}`, false},
	{`{"path":"/bin/true","args":"true"}`, false},
	{`[]`, false},
	{``, false},
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range requestTests {
		_, err := decodeRequest([]byte(tc.in))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errBadMessage)) {
			t.Errorf("decodeRequest(%q): %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

var nspidTests = []struct {
	in   string
	want []int // nil: must be rejected
}{
	{"Name:\tsleep\nTgid:\t4242\nNSpid:\t4242\t12\nPPid:\t1\n", []int{4242, 12}},
	{"NSpid:\t1\n", []int{1}},
	// The fdinfo of a pidfd.
	{"pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4242\nNSpid:\t4242\t12\t1\n", []int{4242, 12, 1}},
	// The fdinfo of a pidfd whose process has been reaped.
	{"Pid:\t-1\nNSpid:\t-1\n", nil},
	{"NSpid:\n", nil},
	{"NSpid:\t12 x\n", nil},
	{"Name:\tsleep\n", nil},
	{"", nil},
}

func TestParseNSpid(t *testing.T) {
	for _, tc := range nspidTests {
		got, err := parseNSpid([]byte(tc.in))
		if tc.want == nil {
			if !errors.Is(err, errBadMessage) {
				t.Errorf("parseNSpid(%q) = %v, %v; want errBadMessage", tc.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseNSpid(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

var nsInodeTests = []struct {
	link, kind string
	want       uint64
	ok         bool
}{
	{"net:[4026531840]", "net", 4026531840, true},
	{"pid:[4026531836]", "pid", 4026531836, true},
	{"pid:[4026531836]", "net", 0, false},
	{"net:[]", "net", 0, false},
	{"net:[-1]", "net", 0, false},
	{"net:[12", "net", 0, false},
	{"", "net", 0, false},
}

func TestParseNSInode(t *testing.T) {
	for _, tc := range nsInodeTests {
		got, err := parseNSInode(tc.link, tc.kind)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseNSInode(%q, %q) = %d, %v; want %d, ok=%v", tc.link, tc.kind, got, err, tc.want, tc.ok)
		}
	}
}

var linksUpTests = []struct {
	out  string
	n    int
	want bool
}{
	{"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT\n" +
		"2: to-b@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT\n", 1, true},
	{"2: to-b@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT\n", 1, false},
	{"2: to-b@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT\n", 2, false},
	{"", 1, false},
}

func TestLinksUp(t *testing.T) {
	for _, tc := range linksUpTests {
		if got := linksUp(tc.out, tc.n); got != tc.want {
			t.Errorf("linksUp(%q, %d) = %v, want %v", tc.out, tc.n, got, tc.want)
		}
	}
}

func FuzzDecodeReply(f *testing.F) {
	for _, tc := range replyTests {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReply(b)
		if err != nil {
			return
		}
		if r.Kind == replyStarted && r.PID <= 0 {
			t.Errorf("accepted a start without a pid: %+v", r)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range requestTests {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err == nil && (r.Path == "" || len(r.Args) == 0 || r.WantPID < 0 || r.WantPID == 1) {
			t.Errorf("accepted a request without a program: %+v", r)
		}
	})
}

func FuzzParseNSpid(f *testing.F) {
	for _, tc := range nspidTests {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pids, err := parseNSpid(b)
		if err != nil {
			return
		}
		if len(pids) == 0 {
			t.Errorf("no pids and no error")
		}
		for _, p := range pids {
			if p < 0 {
				t.Errorf("negative pid in %v", pids)
			}
		}
	})
}

func FuzzParseNSInode(f *testing.F) {
	for _, tc := range nsInodeTests {
		f.Add(tc.link, tc.kind)
	}
	f.Fuzz(func(t *testing.T, link, kind string) {
		parseNSInode(link, kind)
	})
}

func TestRemoveStaleSockDirs(t *testing.T) {
	tmp := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name string, age time.Time, listen bool) string {
		d := filepath.Join(tmp, sockDirPrefix+name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", filepath.Join(d, "a"))
		if err != nil {
			t.Fatal(err)
		}
		if listen {
			t.Cleanup(func() { ln.Close() })
		} else {
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			ln.Close() // a dead socket file stays, as after a crash
		}
		if err := os.Chtimes(d, age, age); err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		dir  string
		keep bool
	}{
		{mk("crashed", old, false), false},
		{mk("live", old, true), true},
		{mk("starting", time.Now(), false), true},
	}
	removeStaleSockDirs(tmp, time.Minute)
	for _, tc := range tests {
		_, err := os.Stat(tc.dir)
		if (err == nil) != tc.keep {
			t.Errorf("%s: kept=%v, want %v", tc.dir, err == nil, tc.keep)
		}
	}
}

var linkStatsTests = []struct {
	in   string
	want LinkStats
	ok   bool
}{
	{`[{"ifindex":11,"ifname":"to-b","stats64":{"rx":{"bytes":10,"packets":1,"errors":0},"tx":{"bytes":2048,"packets":3}}}]`,
		LinkStats{TxBytes: 2048, TxPackets: 3, RxBytes: 10, RxPackets: 1}, true},
	{`[{"ifindex":11,"ifname":"to-b"}]`, LinkStats{}, false},
	{`[]`, LinkStats{}, false},
	{`[{"stats64":{"rx":{"bytes":-1}}}]`, LinkStats{}, false},
	{`Device "to-x" does not exist.`, LinkStats{}, false},
}

func TestParseLinkStats(t *testing.T) {
	for _, tc := range linkStatsTests {
		got, err := parseLinkStats([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseLinkStats(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseLinkStats(f *testing.F) {
	for _, tc := range linkStatsTests {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseLinkStats(b)
	})
}
