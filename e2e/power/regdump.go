package power

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RegSet is one register set as dumped by cprog/powercheck regdump:
// PTRACE_GETREGSET's bytes and length, or the errno it failed with.
type RegSet struct {
	Name  string
	Note  uint32 // NT_* note type
	Data  []byte // len(Data) is the length GETREGSET returned
	Errno int    // non-zero when GETREGSET failed
	Err   string // strerror of Errno
}

// ErrBadRegDump is returned by ParseRegDump for malformed input.
var ErrBadRegDump = errors.New("power: malformed register dump")

// ParseRegDump decodes the text written by "powercheck regdump":
//
//	# comment lines
//	regset NAME 0xNOTE len N          followed by lines "OFFSET HEX..." holding N bytes
//	regset NAME 0xNOTE errno E TEXT
//	end
//
// It returns the sets in order.
func ParseRegDump(text []byte) ([]RegSet, error) {
	var sets []RegSet
	var cur *RegSet
	want := 0
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadRegDump, line, fmt.Sprintf(format, args...))
	}
	finish := func() error {
		if cur != nil && cur.Errno == 0 && len(cur.Data) != want {
			return bad("%s: %d bytes of %d", cur.Name, len(cur.Data), want)
		}
		return nil
	}
	ended := false
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if ended {
			return nil, bad("data after end")
		}
		f := strings.Fields(s)
		switch f[0] {
		case "regset":
			if err := finish(); err != nil {
				return nil, err
			}
			if len(f) < 5 {
				return nil, bad("short regset line %q", s)
			}
			note, err := strconv.ParseUint(f[2], 0, 32)
			if err != nil {
				return nil, bad("note %q: %v", f[2], err)
			}
			n, err := strconv.Atoi(f[4])
			if err != nil || n < 0 || n > 1<<20 {
				return nil, bad("count %q", f[4])
			}
			sets = append(sets, RegSet{Name: f[1], Note: uint32(note)})
			cur = &sets[len(sets)-1]
			switch f[3] {
			case "len":
				want = n
				cur.Data = make([]byte, 0, n)
			case "errno":
				if n == 0 {
					return nil, bad("errno 0")
				}
				cur.Errno, cur.Err, want = n, strings.Join(f[5:], " "), 0
			default:
				return nil, bad("want len or errno, got %q", f[3])
			}
		case "end":
			if err := finish(); err != nil {
				return nil, err
			}
			cur, ended = nil, true
		default:
			if cur == nil || cur.Errno != 0 || len(f) != 2 {
				return nil, bad("unexpected %q", s)
			}
			off, err := strconv.ParseUint(f[0], 16, 32)
			if err != nil || int(off) != len(cur.Data) {
				return nil, bad("offset %q, have %d bytes", f[0], len(cur.Data))
			}
			b, err := hex.DecodeString(f[1])
			if err != nil || len(cur.Data)+len(b) > want {
				return nil, bad("hex %q", f[1])
			}
			cur.Data = append(cur.Data, b...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRegDump, err)
	}
	if !ended {
		return nil, fmt.Errorf("%w: no end line", ErrBadRegDump)
	}
	return sets, nil
}
