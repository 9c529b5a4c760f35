package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/migrated/migrated/image"
)

var (
	secretA = bytes.Repeat([]byte{0xa5}, SecretSize)
	secretB = bytes.Repeat([]byte{0x5a}, SecretSize)
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTransport(t testing.TB, o Options) *Transport {
	t.Helper()
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// connect dials dst from src and returns both ends of the session.
func connect(t testing.TB, src, dst *Transport) (*Session, *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := dst.Accept(ctx)
		ch <- res{s, err}
	}()
	ss, err := src.Dial(ctx, dst.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { ss.Close(); r.s.Close() })
	return ss, r.s
}

func TestNewRequiresSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want error
	}{
		{"no secret", Options{}, ErrNoSecret},
		{"short secret", Options{Secret: []byte("short")}, nil},
		{"bad codec", Options{Secret: secretA, Codec: "lz4"}, nil},
	} {
		tc.o.ListenAddr = "127.0.0.1:0"
		tr, err := New(tc.o)
		if err == nil {
			tr.Close()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	tr, err := New(Options{ListenAddr: "127.0.0.1:0", Insecure: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("insecure: %v", err)
	}
	tr.Close()
}

func TestAuthentication(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst Options
		ok       bool
	}{
		{"same secret", Options{Secret: secretA}, Options{Secret: secretA}, true},
		{"both insecure", Options{Insecure: true}, Options{Insecure: true}, true},
		{"wrong secret", Options{Secret: secretB}, Options{Secret: secretA}, false},
		{"insecure dialer", Options{Insecure: true}, Options{Secret: secretA}, false},
		{"insecure listener", Options{Secret: secretA}, Options{Insecure: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := newTransport(t, tc.src), newTransport(t, tc.dst)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := src.Dial(ctx, dst.Addr().String())
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				ds, err := dst.Accept(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer ds.Close()
				if ds.ID() != s.ID() {
					t.Fatalf("session ids %s and %s", s.ID(), ds.ID())
				}
				return
			}
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("dial: %v, want ErrAuth", err)
			}
			actx, acancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer acancel()
			if ds, err := dst.Accept(actx); err == nil {
				t.Fatalf("listener accepted session %s", ds.ID())
			}
		})
	}
}

// A proof captured on one connection is refused on another, even one made
// by a dialer that knows the secret: it is bound to the TLS session.
func TestProofReplayRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attacker []byte // the replaying dialer's secret
	}{
		{"replay by a peer without the secret", secretB},
		{"replay on a fresh connection", secretA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newTransport(t, Options{Secret: secretA})
			good := newTransport(t, Options{Secret: secretA, PageConns: 1})
			var captured []byte
			testHookHello = func(msg []byte) []byte {
				if captured == nil {
					captured = append([]byte{}, msg...)
				}
				return msg
			}
			defer func() { testHookHello = nil }()
			connect(t, good, dst)
			if captured == nil {
				t.Fatal("no proof captured")
			}
			attacker := newTransport(t, Options{Secret: tc.attacker})
			testHookHello = func([]byte) []byte { return captured }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := attacker.Dial(ctx, dst.Addr().String())
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("replayed proof: %v, want ErrAuth", err)
			}
			actx, acancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer acancel()
			if s, err := dst.Accept(actx); err == nil {
				t.Fatalf("replayed proof opened session %s", s.ID())
			}
		})
	}
}

var controlCases = []*image.Control{
	{Msg: &image.Control_Hello{Hello: &image.Hello{MoveId: "m-1", SourceNode: "a", FormatVersion: 1}}},
	{Msg: &image.Control_RoundDone{RoundDone: &image.RoundDone{Round: 3, Pages: 1 << 20, Frames: 9000, MemoryBytes: 4 << 30, WireBytes: 2 << 30}}},
	{Msg: &image.Control_Commit{Commit: &image.Commit{MoveId: "m-1"}}},
	{Msg: &image.Control_Running{Running: &image.Running{MoveId: "m-1", Pid: 4242}}},
	{},
}

func TestControlMessages(t *testing.T) {
	src, dst := newTransport(t, Options{Secret: secretA}), newTransport(t, Options{Secret: secretA})
	ss, ds := connect(t, src, dst)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pair := range [][2]*Session{{ss, ds}, {ds, ss}} {
		for _, m := range controlCases {
			if err := pair[0].Send(m); err != nil {
				t.Fatal(err)
			}
		}
		for i, want := range controlCases {
			got, err := pair[1].Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("message %d: got %v, want %v", i, got, want)
			}
		}
	}
	// A Recv cancelled while nothing arrives leaves the session usable.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := ds.Recv(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle Recv: %v", err)
	}
	if err := ss.Send(controlCases[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Recv(ctx); err != nil {
		t.Fatalf("Recv after a cancelled Recv: %v", err)
	}
	// Closing one side ends the other's Recv with ErrClosed.
	ss.Close()
	if _, err := ds.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after peer Close: %v, want ErrClosed", err)
	}
}

func TestControlMessageTooLarge(t *testing.T) {
	src := newTransport(t, Options{Secret: secretA, MaxControlMessage: 64})
	dst := newTransport(t, Options{Secret: secretA, MaxControlMessage: 1 << 20})
	ss, ds := connect(t, src, dst)
	big := &image.Control{Msg: &image.Control_Hello{Hello: &image.Hello{MoveId: string(make([]byte, 100))}}}
	if err := ss.Send(big); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("send: %v, want ErrMessageTooLarge", err)
	}
	// The other way, the receiver refuses it and ends the session.
	if err := ds.Send(big); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ss.Recv(ctx); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("recv: %v, want ErrMessageTooLarge", err)
	}
}

// memSink keeps every page it is given, for checking.
type memSink struct {
	mu    sync.Mutex
	pages map[uint64][]byte // page address -> contents (nil: zero)
	round map[uint64]uint32
	block chan struct{} // if set, writes wait for it
}

func newMemSink() *memSink {
	return &memSink{pages: map[uint64][]byte{}, round: map[uint64]uint32{}}
}

func (m *memSink) WritePages(round uint32, addr uint64, data []byte) error {
	if m.block != nil {
		<-m.block
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for off := 0; off < len(data); off += 4096 {
		m.pages[addr+uint64(off)] = append([]byte{}, data[off:off+4096]...)
		m.round[addr+uint64(off)] = round
	}
	return nil
}

// vecSink is a memSink that takes a frame's extents at once
// (VectorPageSink), and checks that they are disjoint and ascending.
type vecSink struct {
	*memSink
	calls int
}

func (v *vecSink) WriteExtents(round uint32, ext []Extent) error {
	v.calls++
	for i, e := range ext {
		if len(e.Data) == 0 || len(e.Data)%4096 != 0 {
			return fmt.Errorf("extent %d: %d bytes", i, len(e.Data))
		}
		if i > 0 && e.Addr < ext[i-1].Addr+uint64(len(ext[i-1].Data)) {
			return fmt.Errorf("extent %d at %#x overlaps or precedes the one before", i, e.Addr)
		}
		if err := v.WritePages(round, e.Addr, e.Data); err != nil {
			return err
		}
	}
	return nil
}

// sinkKinds are the two ways the receiver hands pages over.
var sinkKinds = []struct {
	name string
	make func(*memSink) PageSink
}{
	{"per-extent", func(m *memSink) PageSink { return m }},
	{"vector", func(m *memSink) PageSink { return &vecSink{memSink: m} }},
}

func (m *memSink) ZeroPages(round uint32, addr uint64, size int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for off := 0; off < size; off += 4096 {
		m.pages[addr+uint64(off)] = nil
		m.round[addr+uint64(off)] = round
	}
	return nil
}

// mixedPages makes n 4 KiB pages like the benchmark workload
// (e2e/workloads/mixed.c, FACTS.md): page i is, by i mod 4, zero, random,
// random, or text made of words.
func mixedPages(n int, seed uint64) []byte {
	b := make([]byte, n*4096)
	fillMixed(b, 0, seed)
	return b
}

var mixedWords = []string{"the", "process", "keeps", "running", "while", "its", "memory", "streams", "to",
	"another", "host", "and", "resumes", "there", "after", "a", "short", "pause",
	"exactly", "one", "copy", "runs", "never", "zero", "never", "two", "page",
	"frame", "round", "dirty", "converge", "cutover", "POWER", "kernel", "signal",
	"thread", "register", "vector", "futex", "mapping"}

// fillMixed fills b with mixed pages, the first being page number first.
func fillMixed(b []byte, first int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(first)))
	for i := 0; i < len(b)/4096; i++ {
		p := b[i*4096 : (i+1)*4096]
		switch (first + i) % 4 {
		case 0:
			clear(p)
		case 1, 2:
			for j := 0; j < 4096; j += 8 {
				binary.LittleEndian.PutUint64(p[j:], rng.Uint64())
			}
		case 3:
			for off := 0; off < 4096; {
				r := rng.Uint64()
				w := mixedWords[r%uint64(len(mixedWords))]
				n := min(len(w), 4096-off-1)
				off += copy(p[off:], w[:n])
				if (r>>32)%11 == 0 {
					p[off] = '\n'
				} else {
					p[off] = ' '
				}
				off++
			}
		}
	}
}

func indices(first uint32, n int) []uint32 {
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = first + uint32(i)
	}
	return idx
}

func TestPagesEveryCodec(t *testing.T) {
	for _, codec := range []string{"s2", "zstd", "raw"} {
		for _, sk := range sinkKinds {
			t.Run(codec+"/"+sk.name, func(t *testing.T) { testPagesCodec(t, codec, sk.make) })
		}
	}
}

func testPagesCodec(t *testing.T, codec string, mk func(*memSink) PageSink) {
	o := Options{Secret: secretA, Codec: codec, FramePages: 64}
	src, dst := newTransport(t, o), newTransport(t, o)
	ss, ds := connect(t, src, dst)
	sink := newMemSink()
	if err := ds.ReceivePages(mk(sink)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 1000
	pages := mixedPages(n, 1)
	vmas := []uint64{0x400000, 0x7f0000000000}
	for _, start := range vmas {
		for i := 0; i < n; i += 300 {
			j := min(i+300, n)
			if err := ss.SendPages(ctx, PageBatch{Round: 0, Start: start, Indices: indices(uint32(i), j-i), Pages: pages[i*4096 : j*4096]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ss.FlushPages(ctx); err != nil {
		t.Fatal(err)
	}
	sent := ss.SentStats(0)
	if err := ds.WaitRound(ctx, 0, sent.Frames); err != nil {
		t.Fatal(err)
	}
	got := ds.ReceivedStats(0)
	if got.Pages != 2*n || sent.Pages != 2*n || got.WireBytes != sent.WireBytes || got.MemoryBytes != 2*n*4096 {
		t.Fatalf("stats: sent %+v received %+v", sent, got)
	}
	// Zero pages alone bring raw to 0.75; compressed text lower.
	if codec != "raw" && got.WireBytes > got.MemoryBytes*65/100 {
		t.Errorf("%s: %d wire bytes for %d memory bytes", codec, got.WireBytes, got.MemoryBytes)
	}
	for _, start := range vmas {
		for i := 0; i < n; i++ {
			want := pages[i*4096 : (i+1)*4096]
			p, ok := sink.pages[start+uint64(i)*4096]
			if !ok {
				t.Fatalf("page %d of %#x missing", i, start)
			}
			if p == nil {
				p = make([]byte, 4096)
			}
			if !bytes.Equal(p, want) {
				t.Fatalf("page %d of %#x differs", i, start)
			}
		}
	}
}

// Frames of several rounds arrive in any order and more than once, over
// several connections: every page ends with the contents of the latest
// round that sent it, including a zero page over older contents.
func TestPagesRoundsOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []uint32 // rounds, in sending order, duplicates allowed
		conns int
	}{
		{"in order", []uint32{0, 1, 2}, 1},
		{"reversed", []uint32{2, 1, 0}, 1},
		{"duplicates", []uint32{1, 0, 1, 2, 2, 0, 1}, 1},
		{"scrambled over connections", []uint32{2, 0, 1, 0, 2, 1, 0}, 4},
	} {
		for _, sk := range sinkKinds {
			t.Run(tc.name+"/"+sk.name, func(t *testing.T) {
				o := Options{Secret: secretA, PageConns: tc.conns, FramePages: 8}
				src, dst := newTransport(t, o), newTransport(t, o)
				ss, ds := connect(t, src, dst)
				sink := newMemSink()
				ds.ReceivePages(sk.make(sink))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				const start = 0x10000000
				// Round r sends pages [0, 64-16r), so each round rewrites
				// fewer pages; round 2 makes its pages zero.
				content := func(r uint32, n int) []byte {
					if r == 2 {
						return make([]byte, n*4096)
					}
					return mixedPages(n, uint64(10+r))
				}
				latest := map[uint32]bool{}
				for _, r := range tc.order {
					n := 64 - 16*int(r)
					if err := ss.SendPages(ctx, PageBatch{Round: r, Start: start, Indices: indices(0, n), Pages: content(r, n)}); err != nil {
						t.Fatal(err)
					}
					latest[r] = true
				}
				if err := ss.FlushPages(ctx); err != nil {
					t.Fatal(err)
				}
				for r := range latest {
					if err := ds.WaitRound(ctx, r, ss.SentStats(r).Frames); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < 64; i++ {
					var r uint32
					for cand := range latest {
						if i < 64-16*int(cand) && cand >= r {
							r = cand
						}
					}
					want := content(r, 64-16*int(r))[i*4096 : (i+1)*4096]
					got := sink.pages[start+uint64(i)*4096]
					if got == nil {
						got = make([]byte, 4096)
					}
					if !bytes.Equal(got, want) || sink.round[start+uint64(i)*4096] != r {
						t.Fatalf("page %d: round %d contents, want round %d", i, sink.round[start+uint64(i)*4096], r)
					}
				}
			})
		}
	}
}

func TestBadChecksumEndsSession(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func([]byte)
	}{
		{"payload bit flip", func(b []byte) { b[len(b)-1] ^= 0x40 }},
		{"round changed", func(b []byte) { b[4] ^= 1 }},
		{"bad magic", func(b []byte) { b[0] = 'X' }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Secret: secretA, Codec: "raw", PageConns: 1}
			src, dst := newTransport(t, o), newTransport(t, o)
			ss, ds := connect(t, src, dst)
			ds.ReceivePages(newMemSink())
			testHookTamper = tc.tamper
			defer func() { testHookTamper = nil }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ss.SendPages(ctx, PageBatch{Round: 1, Start: 0x1000, Indices: indices(0, 4), Pages: mixedPages(4, 3)})
			select {
			case <-ds.Done():
			case <-ctx.Done():
				t.Fatal("receiver did not end the session")
			}
			if !errors.Is(ds.Err(), ErrChecksum) {
				t.Fatalf("receiver: %v, want ErrChecksum", ds.Err())
			}
			select {
			case <-ss.Done():
			case <-ctx.Done():
				t.Fatal("sender's session did not end")
			}
			if !errors.Is(ss.Err(), ErrChecksum) {
				t.Fatalf("sender: %v, want ErrChecksum", ss.Err())
			}
		})
	}
}

// The peer goes away while pages stream: the sender's session ends with a
// typed error, and SendPages stops blocking.
func TestPeerVanishesMidStream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vanish func(dst *Transport, ds *Session, sink *memSink)
		want   error
	}{
		// The socket disappears without a word: only the idle timeout can tell.
		{"socket gone", func(dst *Transport, _ *Session, _ *memSink) { dst.udp.Close() }, ErrIdleTimeout},
		// The peer process is alive but stops taking pages.
		{"receiver stalls", func(_ *Transport, _ *Session, sink *memSink) {}, ErrIdleTimeout},
		// The peer kills the connection.
		{"connection killed", func(_ *Transport, ds *Session, _ *memSink) { ds.ctrl.CloseWithError(codeFailed, "gone") }, ErrConnBroken},
		// The peer closes the session on purpose.
		{"peer closes", func(_ *Transport, ds *Session, _ *memSink) { ds.Close() }, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Secret: secretA, IdleTimeout: time.Second, StallTimeout: 3 * time.Second}
			src, dst := newTransport(t, o), newTransport(t, o)
			ss, ds := connect(t, src, dst)
			sink := newMemSink()
			block := make(chan struct{})
			defer close(block)
			if tc.name == "receiver stalls" {
				sink.block = block
			}
			ds.ReceivePages(sink)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			pages := mixedPages(1024, 4)
			var sendErr error
			for i := uint32(0); sendErr == nil && ctx.Err() == nil; i++ {
				if i == 8 {
					tc.vanish(dst, ds, sink)
				}
				sendErr = ss.SendPages(ctx, PageBatch{Round: 0, Start: uint64(i) << 32, Indices: indices(0, 1024), Pages: pages})
			}
			if !errors.Is(sendErr, tc.want) {
				t.Fatalf("SendPages: %v, want %v", sendErr, tc.want)
			}
			if !errors.Is(ss.Err(), tc.want) {
				t.Fatalf("session: %v, want %v", ss.Err(), tc.want)
			}
			if err := ss.Send(controlCases[0]); !errors.Is(err, tc.want) {
				t.Fatalf("Send after the end: %v", err)
			}
		})
	}
}

func TestBandwidthCap(t *testing.T) {
	const rate = 8 << 20
	o := Options{Secret: secretA, Codec: "raw", MaxBandwidth: rate}
	src, dst := newTransport(t, o), newTransport(t, o)
	ss, ds := connect(t, src, dst)
	ds.ReceivePages(newMemSink())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pages := mixedPages(1024, 5) // ~3 MiB of non-zero pages
	begin := time.Now()
	for r := uint32(0); r < 2; r++ {
		if err := ss.SendPages(ctx, PageBatch{Round: r, Start: 0, Indices: indices(0, 1024), Pages: pages}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.FlushPages(ctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(begin)
	wire := ss.SentTotal().WireBytes
	// The bucket allows a burst of 50 ms of rate; the rest is paced.
	if min := time.Duration(float64(wire-rate/20) / rate * float64(time.Second) * 0.9); elapsed < min {
		t.Fatalf("%d wire bytes in %v with a cap of %d B/s (want at least %v)", wire, elapsed, rate, min)
	}
	t.Logf("%d wire bytes in %v (cap %d B/s)", wire, elapsed, rate)
}

func TestUDPBufferWarning(t *testing.T) {
	for _, tc := range []struct {
		r    BufferReport
		warn bool
	}{
		{BufferReport{RmemMax: 212992, WmemMax: 212992, Recv: 212992, Send: 212992, Want: wantUDPBuffer}, true},
		{BufferReport{Recv: wantUDPBuffer, Send: wantUDPBuffer, Want: wantUDPBuffer}, false},
		{BufferReport{Recv: wantUDPBuffer, Send: 4 << 20, Want: wantUDPBuffer}, true},
	} {
		w := tc.r.Warning()
		if (w != "") != tc.warn {
			t.Errorf("%+v: warning %q", tc.r, w)
		}
		if tc.warn && !bytes.Contains([]byte(w), []byte(fmt.Sprintf("sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d", wantUDPBuffer, wantUDPBuffer))) {
			t.Errorf("warning does not say what to run: %q", w)
		}
	}
	tr := newTransport(t, Options{Secret: secretA})
	r := tr.UDPBuffers()
	if r.RmemMax <= 0 || r.Recv <= 0 || r.Send <= 0 {
		t.Fatalf("buffer report %+v", r)
	}
	t.Logf("UDP buffers: %+v", r)
}

func FuzzReadControl(f *testing.F) {
	for _, m := range controlCases {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf []byte
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < 4; i++ {
			var started bool
			m := new(image.Control)
			err := readControl(r, 1<<16, &buf, m, &started)
			if err != nil {
				if errors.Is(err, io.EOF) && started {
					t.Fatalf("EOF inside a message: %v", err)
				}
				return
			}
			if cap(buf) > 1<<16 {
				t.Fatalf("buffer of %d bytes for a limit of 64 KiB", cap(buf))
			}
		}
	})
}
