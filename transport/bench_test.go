package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

const (
	benchBytes = 1 << 30  // memory moved per benchmark op
	mixBytes   = 64 << 20 // distinct mixed pages, sent benchBytes/mixBytes times
	batchPages = 1024     // pages per SendPages call (4 MiB)
)

var (
	mixOnce sync.Once
	mix     []byte
)

func benchMix() []byte {
	mixOnce.Do(func() { mix = mixedPages(mixBytes/4096, 42) })
	return mix
}

// countSink takes pages and drops them, as the raw benchmark's receiver
// drops what it read: both ends deliver every byte into user memory once
// (the page receiver into its frame buffers, or decompressed), and neither
// pays for writing into a process, which restore does with
// process_vm_writev at 1.1-1.8 GB/s (FACTS.md).
type countSink struct{ bytes, zero int }

func (s *countSink) WritePages(round uint32, addr uint64, data []byte) error {
	s.bytes += len(data)
	return nil
}

func (s *countSink) ZeroPages(round uint32, addr uint64, size int) error {
	s.zero += size
	return nil
}

// streamPages moves total bytes of mixed pages from ss to ds as one round
// and waits until the receiver applied all of them.
func streamPages(ctx context.Context, ss, ds *Session, round uint32, total int) error {
	return streamFrom(ctx, ss, ds, round, total, benchMix())
}

// streamFrom is streamPages with src (a multiple of batchPages pages) as the
// pages, sent over and over.
func streamFrom(ctx context.Context, ss, ds *Session, round uint32, total int, src []byte) error {
	idx := indices(0, batchPages)
	for off := 0; off < total; off += batchPages * 4096 {
		m := off % len(src)
		// Each pass over the mix is its own VMA, so every page is new.
		start := uint64(off/len(src)) << 40
		if err := ss.SendPages(ctx, PageBatch{Round: round, Start: start, Indices: indexRange(idx, m/4096), Pages: src[m : m+batchPages*4096]}); err != nil {
			return err
		}
	}
	if err := ss.FlushPages(ctx); err != nil {
		return err
	}
	return ds.WaitRound(ctx, round, ss.SentStats(round).Frames)
}

// indexRange fills idx with first, first+1, ...
func indexRange(idx []uint32, first int) []uint32 {
	for i := range idx {
		idx[i] = uint32(first + i)
	}
	return idx
}

// BenchmarkPageStream moves 1 GiB of mixed pages per op between two
// sessions on loopback. Sub-benchmarks vary the page connections and
// streams; the default is the fastest here.
func BenchmarkPageStream(b *testing.B) {
	for _, tc := range []struct {
		conns, streams int
		codec          string
	}{
		{1, 1, "s2"}, {2, 1, "s2"}, {4, 1, "s2"}, {1, 4, "s2"}, {DefaultPageConns, 1, "zstd"},
	} {
		b.Run(fmt.Sprintf("conns=%d/streams=%d/%s", tc.conns, tc.streams, tc.codec), func(b *testing.B) {
			o := Options{Secret: secretA, PageConns: tc.conns, StreamsPerConn: tc.streams, Codec: tc.codec}
			src, dst := newTransport(b, o), newTransport(b, o)
			ss, ds := connect(b, src, dst)
			if err := ds.ReceivePages(&countSink{}); err != nil {
				b.Fatal(err)
			}
			benchMix()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.SetBytes(benchBytes)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := streamPages(ctx, ss, ds, uint32(i), benchBytes); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			t := ss.SentTotal()
			b.ReportMetric(float64(t.WireBytes)/float64(b.N), "wire-B/op")
			b.ReportMetric(float64(t.WireBytes)/float64(t.MemoryBytes), "wire/mem")
		})
	}
}

// rawPair is one plain quic-go stream on loopback (TLS 1.3, default
// quic-go settings): the baseline page streams are compared with.
type rawPair struct {
	st       *quic.SendStream
	received chan error // one value per rawChunk bytes received
	close    func()
	limit    *tokenBucket // nil: no cap
}

const rawChunk = 128 << 20

func newRawPair(b *testing.B) *rawPair {
	cert, err := ephemeralCert()
	if err != nil {
		b.Fatal(err)
	}
	listen := func() (*quic.Transport, *net.UDPConn) {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		return &quic.Transport{Conn: c}, c
	}
	srvT, srvC := listen()
	cliT, cliC := listen()
	ln, err := srvT.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"raw"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &rawPair{received: make(chan error, 1)}
	p.close = func() {
		cancel()
		cliT.Close()
		srvT.Close()
		cliC.Close()
		srvC.Close()
	}
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			p.received <- err
			return
		}
		st, err := conn.AcceptUniStream(ctx)
		if err != nil {
			p.received <- err
			return
		}
		buf := make([]byte, 1<<20)
		for {
			for got := 0; got < rawChunk; {
				k, err := io.ReadFull(st, buf[:min(len(buf), rawChunk-got)])
				got += k
				if err != nil {
					p.received <- err
					return
				}
			}
			p.received <- nil
		}
	}()
	conn, err := cliT.Dial(ctx, srvC.LocalAddr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"raw"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if p.st, err = conn.OpenUniStreamSync(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.close)
	return p
}

// send writes total bytes (a multiple of rawChunk) of the mix and waits
// until the receiver read them.
func (p *rawPair) send(total int) error {
	src := benchMix()
	for off := 0; off < total; off += rawChunk {
		for k := 0; k < rawChunk; k += batchPages * 4096 {
			m := (off + k) % len(src)
			if p.limit != nil {
				p.limit.take(batchPages*4096, nil)
			}
			if _, err := p.st.Write(src[m : m+batchPages*4096]); err != nil {
				return err
			}
		}
		if err := <-p.received; err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkQUICRaw moves the same bytes as BenchmarkPageStream over one
// plain quic-go stream.
func BenchmarkQUICRaw(b *testing.B) {
	p := newRawPair(b)
	benchMix()
	b.SetBytes(benchBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.send(benchBytes); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(benchBytes, "wire-B/op")
	b.ReportMetric(1, "wire/mem")
}

// cpuSeconds is the user and system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkPageStreamVsRaw alternates 128 MiB of page stream (default
// options) and 128 MiB of plain quic-go stream, so that load from other
// processes on a shared machine hits both alike, and reports both rates and
// their ratio (speedup). "loopback" is CPU-bound: both sides share the
// machine's cores. "link" caps both at the same wire rate, as a network
// link would (the page stream with MaxBandwidth, the raw stream with the
// same token bucket), so that the ratio shows what compression and zero
// pages buy when the wire is the bottleneck.
func BenchmarkPageStreamVsRaw(b *testing.B) {
	for _, tc := range []struct {
		name  string
		conns int
		cap   int64
		bytes int
	}{
		{"loopback/conns=1", 1, 0, benchBytes},
		{"loopback/conns=2", 2, 0, benchBytes},
		{"link=10MB/s", 0, 10e6, rawChunk},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := Options{Secret: secretA, PageConns: tc.conns, MaxBandwidth: tc.cap}
			src, dst := newTransport(b, o), newTransport(b, o)
			ss, ds := connect(b, src, dst)
			if err := ds.ReceivePages(&countSink{}); err != nil {
				b.Fatal(err)
			}
			raw := newRawPair(b)
			raw.limit = newTokenBucket(tc.cap)
			benchMix()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			var tPages, tRaw time.Duration
			var cPages, cRaw float64 // CPU seconds of this process (both ends)
			round := uint32(0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for off := 0; off < tc.bytes; off += rawChunk {
					t0, c0 := time.Now(), cpuSeconds()
					if err := streamPages(ctx, ss, ds, round, rawChunk); err != nil {
						b.Fatal(err)
					}
					round++
					t1, c1 := time.Now(), cpuSeconds()
					if err := raw.send(rawChunk); err != nil {
						b.Fatal(err)
					}
					tPages += t1.Sub(t0)
					tRaw += time.Since(t1)
					cPages += c1 - c0
					cRaw += cpuSeconds() - c1
				}
			}
			b.StopTimer()
			mb := float64(b.N) * float64(tc.bytes) / 1e6
			b.ReportMetric(mb/tPages.Seconds(), "pages-MB/s")
			b.ReportMetric(mb/tRaw.Seconds(), "raw-MB/s")
			b.ReportMetric(tRaw.Seconds()/tPages.Seconds(), "speedup")
			gib := float64(b.N) * float64(tc.bytes) / (1 << 30)
			b.ReportMetric(cPages/gib, "pages-cpu-s/GiB")
			b.ReportMetric(cRaw/gib, "raw-cpu-s/GiB")
			t := ss.SentTotal()
			b.ReportMetric(float64(t.WireBytes)/float64(t.MemoryBytes), "wire/mem")
		})
	}
}
