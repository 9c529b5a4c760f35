package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ParseLoadavg reads the three load averages from the text of /proc/loadavg.
func ParseLoadavg(b []byte) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return l, fmt.Errorf("loadavg %q: too few fields", b)
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || v < 0 || v > 1e9 {
			return l, fmt.Errorf("loadavg %q: field %d", b, i)
		}
		l[i] = v
	}
	return l, nil
}

// ParseMeminfo returns MemAvailable and MemTotal in bytes from the text of
// /proc/meminfo.
func ParseMeminfo(b []byte) (avail, total uint64, err error) {
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "MemAvailable" && k != "MemTotal" {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("meminfo %s: %q", k, v)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<50 {
			return 0, 0, fmt.Errorf("meminfo %s: %q", k, v)
		}
		if k == "MemAvailable" {
			avail = n << 10
			seen |= 1
		} else {
			total = n << 10
			seen |= 2
		}
	}
	if seen != 3 {
		return 0, 0, fmt.Errorf("meminfo: no MemAvailable or MemTotal")
	}
	return avail, total, nil
}

// ReadLoad fills the load, memory and CPU fields of m from /proc.
func ReadLoad(m *Meta, cpus int) error {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return err
	}
	if m.Load, err = ParseLoadavg(b); err != nil {
		return err
	}
	if b, err = os.ReadFile("/proc/meminfo"); err != nil {
		return err
	}
	if m.FreeMemory, m.TotalMemory, err = ParseMeminfo(b); err != nil {
		return err
	}
	m.CPUs = uint32(cpus)
	return nil
}
