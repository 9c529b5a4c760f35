package workload

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Result is what a workload wrote to DIR/result.
type Result struct {
	// Status is "PASS" or "FAIL: <reason>".
	Status string
	// Fields are the key=value lines that follow it.
	Fields map[string]string
}

// Passed reports whether the workload passed its own check.
func (r Result) Passed() bool { return r.Status == "PASS" }

// Int returns field key as an integer.
func (r Result) Int(key string) (int64, error) {
	v, ok := r.Fields[key]
	if !ok {
		return 0, fmt.Errorf("result has no field %q", key)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("result field %s=%q: %w", key, v, err)
	}
	return n, nil
}

// ErrBadResult is returned for a result file that does not follow the
// protocol.
var ErrBadResult = errors.New("malformed result file")

// ParseResult decodes a result file.
func ParseResult(b []byte) (Result, error) {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return Result{}, fmt.Errorf("%w: not newline-terminated", ErrBadResult)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	r := Result{Status: lines[0], Fields: map[string]string{}}
	if r.Status != "PASS" && (!strings.HasPrefix(r.Status, "FAIL: ") || len(r.Status) == len("FAIL: ")) {
		return Result{}, fmt.Errorf("%w: first line %q is neither PASS nor FAIL: <reason>", ErrBadResult, r.Status)
	}
	for i, l := range lines[1:] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return Result{}, fmt.Errorf("%w: line %d %q is not key=value", ErrBadResult, i+2, l)
		}
		if _, dup := r.Fields[k]; dup {
			return Result{}, fmt.Errorf("%w: field %q repeated", ErrBadResult, k)
		}
		r.Fields[k] = v
	}
	return r, nil
}
