package nshost

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// parseNSpid returns the NSpid line of /proc/PID/status (or the NSpid line
// of a pidfd's fdinfo): the PID of the task in each PID namespace it is in,
// from the reader's namespace down to the task's own.
func parseNSpid(status []byte) ([]int, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%w: empty NSpid line", errBadMessage)
		}
		pids := make([]int, len(fields))
		for i, f := range fields {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: NSpid field %q", errBadMessage, f)
			}
			pids[i] = n
		}
		return pids, nil
	}
	return nil, fmt.Errorf("%w: no NSpid line", errBadMessage)
}

// NSpid reads /proc/PID/status, PID taken in the caller's PID namespace, and
// returns the task's PID in every namespace from the caller's down to its
// own: NSpid(root)[len-1] is the PID as seen inside its host.
func NSpid(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("nshost: read status of %d: %w", pid, err)
	}
	pids, err := parseNSpid(b)
	if err != nil {
		return nil, fmt.Errorf("nshost: status of %d: %w", pid, err)
	}
	return pids, nil
}

// parseNSInode parses the target of a /proc/PID/ns/* link, "net:[4026531840]".
func parseNSInode(link, kind string) (uint64, error) {
	rest, ok := strings.CutPrefix(link, kind+":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, fmt.Errorf("%w: namespace link %q", errBadMessage, link)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: namespace link %q", errBadMessage, link)
	}
	return n, nil
}

// nsInode returns the inode of namespace kind ("net", "pid") of process pid.
func nsInode(pid int, kind string) (uint64, error) {
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return 0, err
	}
	return parseNSInode(l, kind)
}

// allPIDs lists the numeric entries of a procfs directory.
func allPIDs(proc string) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("nshost: list %s: %w", proc, err)
	}
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 {
			pids = append(pids, n)
		}
	}
	return pids, nil
}
