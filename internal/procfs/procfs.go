package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrProcFormat: a /proc file did not have the format this kernel should give.
var ErrProcFormat = errors.New("unexpected /proc format")

// MapEntry is one line of /proc/PID/maps.
type MapEntry struct {
	Start, End uint64
	Read       bool
	Write      bool
	Exec       bool
	Shared     bool
	Offset     uint64
	DevMajor   uint32
	DevMinor   uint32
	Inode      uint64
	Path       string // as printed, without the " (deleted)" suffix
	Deleted    bool
	Flags      []string // VmFlags from smaps, when read from smaps
}

// ParseMaps parses /proc/PID/maps (or the header lines of smaps when
// withFlags, taking each VMA's VmFlags line too).
func ParseMaps(data []byte, withFlags bool) ([]MapEntry, error) {
	var out []MapEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if withFlags {
			if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok {
				if len(out) == 0 {
					return nil, fmt.Errorf("%w: VmFlags before any mapping", ErrProcFormat)
				}
				out[len(out)-1].Flags = strings.Fields(rest)
				continue
			}
			if !isMapsLine(line) {
				continue
			}
		}
		e, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProcFormat, err)
	}
	return out, nil
}

// isMapsLine tells a mapping header ("start-end perms ...") from an smaps
// field line ("Rss:  4 kB").
func isMapsLine(line string) bool {
	i := strings.IndexByte(line, ' ')
	if i <= 0 {
		return false
	}
	return strings.IndexByte(line[:i], '-') > 0 && !strings.HasSuffix(line[:i], ":")
}

func parseMapsLine(line string) (MapEntry, error) {
	var e MapEntry
	bad := func(what string) (MapEntry, error) {
		return MapEntry{}, fmt.Errorf("%w: maps line %q: %s", ErrProcFormat, line, what)
	}
	// Five space-separated fields, then the path (which may contain spaces).
	f := make([]string, 0, 6)
	rest := line
	for i := 0; i < 5; i++ {
		rest = strings.TrimLeft(rest, " ")
		j := strings.IndexByte(rest, ' ')
		if j < 0 {
			if i == 4 {
				f = append(f, rest)
				rest = ""
				break
			}
			return bad("too few fields")
		}
		f = append(f, rest[:j])
		rest = rest[j:]
	}
	if len(f) != 5 {
		return bad("too few fields")
	}
	path := strings.TrimLeft(rest, " ")
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return bad("range")
	}
	var err error
	if e.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return bad("start")
	}
	if e.End, err = strconv.ParseUint(hi, 16, 64); err != nil || e.End <= e.Start {
		return bad("end")
	}
	p := f[1]
	if len(p) != 4 {
		return bad("perms")
	}
	e.Read, e.Write, e.Exec = p[0] == 'r', p[1] == 'w', p[2] == 'x'
	switch p[3] {
	case 's':
		e.Shared = true
	case 'p':
	default:
		return bad("perms")
	}
	if e.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return bad("offset")
	}
	maj, min, ok := strings.Cut(f[3], ":")
	if !ok {
		return bad("dev")
	}
	m1, err1 := strconv.ParseUint(maj, 16, 32)
	m2, err2 := strconv.ParseUint(min, 16, 32)
	if err1 != nil || err2 != nil {
		return bad("dev")
	}
	e.DevMajor, e.DevMinor = uint32(m1), uint32(m2)
	if e.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return bad("inode")
	}
	if p, ok := strings.CutSuffix(path, " (deleted)"); ok {
		path, e.Deleted = p, true
	}
	e.Path = path
	return e, nil
}

// Status holds the fields of /proc/PID/status the engine uses.
type Status struct {
	Name       string
	Umask      uint32
	HasUmask   bool
	Tgid       int
	NSpid      []int
	Uids       []uint32 // real, effective, saved, fs
	Gids       []uint32
	Groups     []uint32
	SigBlk     uint64
	SigPnd     uint64
	ShdPnd     uint64
	CapInh     uint64
	CapPrm     uint64
	CapEff     uint64
	CapBnd     uint64
	CapAmb     uint64
	NoNewPrivs bool
	Threads    int
	Seccomp    int
}

// ParseStatus parses /proc/PID/status.
func ParseStatus(data []byte) (*Status, error) {
	s := &Status{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "Name":
			s.Name = v
		case "Umask":
			var u uint64
			u, err = strconv.ParseUint(v, 8, 32)
			s.Umask, s.HasUmask = uint32(u), true
		case "Tgid":
			s.Tgid, err = strconv.Atoi(v)
		case "NSpid":
			s.NSpid, err = ints(v)
		case "Uid":
			s.Uids, err = uints32(v)
		case "Gid":
			s.Gids, err = uints32(v)
		case "Groups":
			s.Groups, err = uints32(v)
		case "SigBlk":
			s.SigBlk, err = strconv.ParseUint(v, 16, 64)
		case "SigPnd":
			s.SigPnd, err = strconv.ParseUint(v, 16, 64)
		case "ShdPnd":
			s.ShdPnd, err = strconv.ParseUint(v, 16, 64)
		case "CapInh":
			s.CapInh, err = strconv.ParseUint(v, 16, 64)
		case "CapPrm":
			s.CapPrm, err = strconv.ParseUint(v, 16, 64)
		case "CapEff":
			s.CapEff, err = strconv.ParseUint(v, 16, 64)
		case "CapBnd":
			s.CapBnd, err = strconv.ParseUint(v, 16, 64)
		case "CapAmb":
			s.CapAmb, err = strconv.ParseUint(v, 16, 64)
		case "NoNewPrivs":
			s.NoNewPrivs = v == "1"
		case "Threads":
			s.Threads, err = strconv.Atoi(v)
		case "Seccomp":
			s.Seccomp, err = strconv.Atoi(v)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: status %s: %q", ErrProcFormat, k, v)
		}
	}
	if len(s.Uids) != 4 || len(s.Gids) != 4 {
		return nil, fmt.Errorf("%w: status without Uid/Gid lines", ErrProcFormat)
	}
	return s, nil
}

func ints(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(v) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func uints32(v string) ([]uint32, error) {
	var out []uint32
	for _, f := range strings.Fields(v) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, err
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// Stat holds the fields of /proc/PID/stat the engine uses (proc(5)).
type Stat struct {
	Comm                         string
	State                        byte
	PPid, Pgrp, Session          int
	StartCode, EndCode, StartStk uint64
	StartData, EndData, StartBrk uint64
	ArgStart, ArgEnd             uint64
	EnvStart, EnvEnd             uint64
	NumThreads                   int
	Nice                         int    // -20 (most favourable) to 19
	StartTime                    uint64 // clock ticks after boot: with the PID, names one process
}

// ParseStat parses /proc/PID/stat. comm is in parentheses and may contain
// spaces and parentheses: the last ')' ends it.
func ParseStat(data []byte) (*Stat, error) {
	s := string(bytes.TrimSpace(data))
	l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if l < 0 || r < l {
		return nil, fmt.Errorf("%w: stat without comm", ErrProcFormat)
	}
	st := &Stat{Comm: s[l+1 : r]}
	f := strings.Fields(s[r+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 50-2 {
		return nil, fmt.Errorf("%w: stat has %d fields", ErrProcFormat, len(f)+2)
	}
	if len(f[0]) != 1 {
		return nil, fmt.Errorf("%w: stat state %q", ErrProcFormat, f[0])
	}
	st.State = f[0][0]
	var err error
	num := func(n int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	sint := func(n int) int {
		if err != nil {
			return 0
		}
		var v int64
		v, err = strconv.ParseInt(f[n-3], 10, 64)
		return int(v)
	}
	st.PPid, st.Pgrp, st.Session = sint(4), sint(5), sint(6)
	st.Nice, st.NumThreads = sint(19), sint(20)
	st.StartTime = num(22)
	st.StartCode, st.EndCode, st.StartStk = num(26), num(27), num(28)
	st.StartData, st.EndData, st.StartBrk = num(45), num(46), num(47)
	st.ArgStart, st.ArgEnd, st.EnvStart, st.EnvEnd = num(48), num(49), num(50), num(51)
	if err != nil {
		return nil, fmt.Errorf("%w: stat: %v", ErrProcFormat, err)
	}
	if st.Nice < -20 || st.Nice > 19 {
		return nil, fmt.Errorf("%w: stat: nice %d", ErrProcFormat, st.Nice)
	}
	return st, nil
}

// ReadStat reads and parses /proc/PID/stat.
func ReadStat(pid int) (*Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	return ParseStat(b)
}

// Exited reports whether the process has exited: a zombie, or dead.
func (st *Stat) Exited() bool { return st.State == 'Z' || st.State == 'X' }

// FdInfo holds /proc/PID/fdinfo/N.
type FdInfo struct {
	Pos   int64
	Flags uint32 // octal in the file
	MntID int
	Ino   uint64
	// EventfdCount and EventfdSemaphore: eventfd's counter and mode
	// (fs/eventfd.c eventfd_show_fdinfo; the count is printed in hex).
	EventfdCount     uint64
	EventfdSemaphore bool
	// Epoll is an epoll's interest list (fs/eventpoll.c ep_show_fdinfo).
	Epoll []EpollItem
}

// EpollItem is one "tfd:" line of an epoll's fdinfo.
type EpollItem struct {
	Fd     int
	Events uint32
	Data   uint64
}

// ParseFdInfo parses /proc/PID/fdinfo/N.
func ParseFdInfo(data []byte) (*FdInfo, error) {
	fi := &FdInfo{}
	seen := 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "pos":
			fi.Pos, err = strconv.ParseInt(v, 10, 64)
			seen++
		case "flags":
			var u uint64
			u, err = strconv.ParseUint(v, 8, 32)
			fi.Flags = uint32(u)
			seen++
		case "mnt_id":
			fi.MntID, err = strconv.Atoi(v)
		case "ino":
			fi.Ino, err = strconv.ParseUint(v, 10, 64)
		case "eventfd-count":
			fi.EventfdCount, err = strconv.ParseUint(v, 16, 64)
		case "eventfd-semaphore":
			fi.EventfdSemaphore = v == "1"
		case "tfd":
			var it EpollItem
			it, err = parseEpollLine(line)
			fi.Epoll = append(fi.Epoll, it)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: fdinfo %s: %q", ErrProcFormat, k, v)
		}
	}
	if seen < 2 {
		return nil, fmt.Errorf("%w: fdinfo without pos and flags", ErrProcFormat)
	}
	return fi, nil
}

// Limit is one line of /proc/PID/limits.
type Limit struct {
	Resource int
	Cur, Max uint64
}

// rlimitNames maps the names /proc/PID/limits prints (fs/proc/base.c,
// lnames[]) to RLIMIT_* numbers (include/uapi/asm-generic/resource.h).
var rlimitNames = []string{
	0: "Max cpu time", 1: "Max file size", 2: "Max data size", 3: "Max stack size",
	4: "Max core file size", 5: "Max resident set", 6: "Max processes", 7: "Max open files",
	8: "Max locked memory", 9: "Max address space", 10: "Max file locks", 11: "Max pending signals",
	12: "Max msgqueue size", 13: "Max nice priority", 14: "Max realtime priority", 15: "Max realtime timeout",
}

// RLimInfinity is RLIM_INFINITY of a 64-bit task.
const RLimInfinity = ^uint64(0)

// ParseLimits parses /proc/PID/limits.
func ParseLimits(data []byte) ([]Limit, error) {
	var out []Limit
	for _, line := range strings.Split(string(data), "\n") {
		for res, name := range rlimitNames {
			rest, ok := strings.CutPrefix(line, name)
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				return nil, fmt.Errorf("%w: limits line %q", ErrProcFormat, line)
			}
			cur, err1 := parseLimit(f[0])
			max, err2 := parseLimit(f[1])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%w: limits line %q", ErrProcFormat, line)
			}
			out = append(out, Limit{Resource: res, Cur: cur, Max: max})
		}
	}
	if len(out) != len(rlimitNames) {
		return nil, fmt.Errorf("%w: limits has %d of %d resources", ErrProcFormat, len(out), len(rlimitNames))
	}
	return out, nil
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" {
		return RLimInfinity, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// ParseTimensOffsets parses /proc/PID/timens_offsets ("monotonic 0 0").
func ParseTimensOffsets(data []byte) (mono, boot int64, err error) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		sec, e1 := strconv.ParseInt(f[1], 10, 64)
		nsec, e2 := strconv.ParseInt(f[2], 10, 64)
		if e1 != nil || e2 != nil {
			return 0, 0, fmt.Errorf("%w: timens_offsets %q", ErrProcFormat, line)
		}
		switch f[0] {
		case "monotonic":
			mono = sec*1e9 + nsec
		case "boottime":
			boot = sec*1e9 + nsec
		}
	}
	return mono, boot, nil
}

// parseEpollLine parses "tfd: %8d events: %8x data: %16llx  pos:... ".
func parseEpollLine(line string) (EpollItem, error) {
	f := strings.Fields(line)
	var it EpollItem
	for i := 0; i+1 < len(f); i++ {
		var err error
		switch f[i] {
		case "tfd:":
			it.Fd, err = strconv.Atoi(f[i+1])
		case "events:":
			var v uint64
			v, err = strconv.ParseUint(f[i+1], 16, 32)
			it.Events = uint32(v)
		case "data:":
			it.Data, err = strconv.ParseUint(f[i+1], 16, 64)
		}
		if err != nil {
			return it, fmt.Errorf("%w: epoll line %q", ErrProcFormat, line)
		}
	}
	return it, nil
}

// Timer is one POSIX timer of /proc/PID/timers (fs/proc/base.c show_timer).
type Timer struct {
	ID     int32
	Signo  int32
	Value  uint64 // sigev_value, as sival_ptr
	Notify int32  // SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD, | SIGEV_THREAD_ID for "tid"
	Target int32  // the pid or tid notified, in the reader's PID namespace
	Clock  int32
}

// sigevThreadID is SIGEV_THREAD_ID.
const sigevThreadID = 4

// ParseTimers parses /proc/PID/timers:
//
//	ID: 0
//	signal: 14/00000000deadbeef
//	notify: signal/pid.1234     (none/..., thread/..., and tid.N for SIGEV_THREAD_ID)
//	ClockID: 1
func ParseTimers(data []byte) ([]Timer, error) {
	var out []Timer
	var cur *Timer
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("%w: timers line %q", ErrProcFormat, line)
		}
		if key == "ID" {
			out = append(out, Timer{})
			cur = &out[len(out)-1]
		} else if cur == nil {
			return nil, fmt.Errorf("%w: timers line %q before an ID", ErrProcFormat, line)
		}
		var err error
		switch key {
		case "ID":
			var n int64
			n, err = strconv.ParseInt(val, 10, 32)
			cur.ID = int32(n)
		case "signal":
			sig, ptr, ok2 := strings.Cut(val, "/")
			if !ok2 {
				return nil, fmt.Errorf("%w: timers signal %q", ErrProcFormat, val)
			}
			var n int64
			if n, err = strconv.ParseInt(sig, 10, 32); err == nil {
				cur.Signo = int32(n)
				cur.Value, err = strconv.ParseUint(ptr, 16, 64)
			}
		case "notify":
			how, who, ok2 := strings.Cut(val, "/")
			kind, id, ok3 := strings.Cut(who, ".")
			if !ok2 || !ok3 {
				return nil, fmt.Errorf("%w: timers notify %q", ErrProcFormat, val)
			}
			switch how {
			case "signal":
				cur.Notify = 0
			case "none":
				cur.Notify = 1
			case "thread":
				cur.Notify = 2
			default:
				return nil, fmt.Errorf("%w: timers notify %q", ErrProcFormat, val)
			}
			if kind == "tid" {
				cur.Notify |= sigevThreadID
			}
			var n int64
			n, err = strconv.ParseInt(id, 10, 32)
			cur.Target = int32(n)
		case "ClockID":
			var n int64
			n, err = strconv.ParseInt(val, 10, 32)
			cur.Clock = int32(n)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: timers line %q: %v", ErrProcFormat, line, err)
		}
	}
	return out, nil
}
