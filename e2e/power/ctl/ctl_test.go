package ctl

import (
	"bytes"
	"errors"
	"testing"
)

var replyTests = []struct {
	name string
	line string
	ok   bool
	want Reply
}{
	{"output chunk", `{"id":3,"out":"aGVsbG8="}`, true, Reply{ID: 3, Out: []byte("hello")}},
	{"done", `{"id":3,"done":true,"exit":1,"pid":42,"err":"x"}`, true, Reply{ID: 3, Done: true, Exit: 1, Pid: 42, Err: "x"}},
	{"trailing CR from a tty", "{\"id\":1,\"done\":true}\r", true, Reply{ID: 1, Done: true}},
	{"echoed request is not a reply", `{"id":1,"argv":["@hello"]}`, false, Reply{}},
	{"two values", `{"id":1} {"id":2}`, false, Reply{}},
	{"kernel message", `[    1.234] hvc1: something`, false, Reply{}},
	{"empty", ``, false, Reply{}},
	{"truncated", `{"id":3,"out":"aGVs`, false, Reply{}},
	{"bad base64", `{"id":3,"out":"!!!"}`, false, Reply{}},
}

func TestDecodeReply(t *testing.T) {
	for _, tc := range replyTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeReply([]byte(tc.line))
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrNotMessage) {
					t.Errorf("error %v is not ErrNotMessage", err)
				}
				return
			}
			if got.ID != tc.want.ID || got.Done != tc.want.Done || got.Exit != tc.want.Exit ||
				got.Pid != tc.want.Pid || got.Err != tc.want.Err || !bytes.Equal(got.Out, tc.want.Out) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	tests := []Request{
		{ID: 1, Argv: []string{"@hello"}},
		{ID: 2, Argv: []string{"/bin/x", "a b", "\n"}, Env: []string{"A=1"}, Dir: "/tmp", Stdin: []byte{0, 1, 2}, Name: "x"},
		{ID: 3, Argv: []string{"/bin/agent"}, Background: true, LogFile: "/tmp/agent.log"},
	}
	for _, want := range tests {
		line, err := Encode(want)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("%q is not one line", line)
		}
		got, err := DecodeRequest(line[:len(line)-1])
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || len(got.Argv) != len(want.Argv) || got.Argv[len(got.Argv)-1] != want.Argv[len(want.Argv)-1] ||
			!bytes.Equal(got.Stdin, want.Stdin) || got.Background != want.Background || got.LogFile != want.LogFile {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	for _, bad := range []string{``, `{}`, `{"id":1}`, `{"argv":["x"]}`, `not json`} {
		if _, err := DecodeRequest([]byte(bad)); !errors.Is(err, ErrNotMessage) {
			t.Errorf("DecodeRequest(%q) = %v, want ErrNotMessage", bad, err)
		}
	}
}

func FuzzDecodeReply(f *testing.F) {
	for _, tc := range replyTests {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := DecodeReply(line)
		if err != nil {
			return
		}
		if r.ID == 0 {
			t.Error("accepted a reply without id")
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":1,"argv":["@hello"]}`))
	f.Add([]byte(`{"id":2,"argv":["/bin/x"],"stdin":"AAEC","background":true}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := DecodeRequest(line)
		if err != nil {
			return
		}
		if r.ID == 0 || len(r.Argv) == 0 {
			t.Error("accepted a request without id or argv")
		}
	})
}
