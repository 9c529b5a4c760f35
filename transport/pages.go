package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/migrated/migrated/image"
)

// PageBatch is a set of pages of one VMA, sent in one round.
type PageBatch struct {
	Round     uint32
	Start     uint64   // VMA start address
	PageShift uint8    // log2 of the page size; 0 means 12 (4 KiB)
	Indices   []uint32 // page indices relative to Start, strictly ascending
	Pages     []byte   // len(Indices) pages, in the same order
}

// PageSink receives decoded pages on the accepting side. Calls are made one
// at a time (never concurrently); data is valid only during the call.
// A sink error ends the session with that error.
type PageSink interface {
	// WritePages writes len(data) bytes of whole pages at addr.
	WritePages(round uint32, addr uint64, data []byte) error
	// ZeroPages makes size bytes of whole pages at addr read as zero.
	ZeroPages(round uint32, addr uint64, size int) error
}

// Extent is a stretch of whole pages at Addr, contiguous in memory.
type Extent struct {
	Addr uint64
	Data []byte
}

// VectorPageSink is a PageSink that can take all the data extents of a
// frame in one call (one process_vm_writev instead of one per extent: the
// mixed pages of a real task give extents of a few pages each). When the
// sink implements it, the receiver calls WriteExtents instead of
// WritePages; the extents are disjoint and ascending, and valid only during
// the call.
type VectorPageSink interface {
	PageSink
	WriteExtents(round uint32, ext []Extent) error
}

// RoundStats counts the pages of one round (or of all rounds).
type RoundStats struct {
	Frames      uint64
	Pages       uint64
	ZeroPages   uint64
	MemoryBytes uint64 // pages x page size, zero pages included
	WireBytes   uint64 // encoded frame bytes, headers included
	// Skipped counts, on the receiver, pages not written because a later
	// round had already written them.
	Skipped uint64
}

func (a *RoundStats) add(b RoundStats) {
	a.Frames += b.Frames
	a.Pages += b.Pages
	a.ZeroPages += b.ZeroPages
	a.MemoryBytes += b.MemoryBytes
	a.WireBytes += b.WireBytes
	a.Skipped += b.Skipped
}

type statsTable struct {
	mu     sync.Mutex
	rounds map[uint32]*RoundStats
	total  RoundStats
}

func (t *statsTable) add(round uint32, d RoundStats) RoundStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rounds == nil {
		t.rounds = map[uint32]*RoundStats{}
	}
	r := t.rounds[round]
	if r == nil {
		r = new(RoundStats)
		t.rounds[round] = r
	}
	r.add(d)
	t.total.add(d)
	return *r
}

func (t *statsTable) get(round uint32) RoundStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.rounds[round]; r != nil {
		return *r
	}
	return RoundStats{}
}

func (t *statsTable) sum() RoundStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// SetMaxBandwidth changes the session's cap on page bytes on the wire, in
// bytes per second; 0 removes it.
func (s *Session) SetMaxBandwidth(bytesPerSecond int64) { s.limiter.setRate(bytesPerSecond) }

// SendPages queues the batch's pages as frames. It returns once every page
// is encoded, so the caller may reuse b.Pages; the frames go out on the page
// streams behind it. It blocks while the page streams are full
// (backpressure). Only the dialing side sends pages.
func (s *Session) SendPages(ctx context.Context, b PageBatch) error {
	if err := s.Err(); err != nil {
		return err
	}
	if !s.dialer {
		return fmt.Errorf("send pages: %w: pages flow from the dialing side", ErrProtocol)
	}
	if b.Round == math.MaxUint32 {
		return fmt.Errorf("send pages: round %d is reserved", b.Round)
	}
	shift := b.PageShift
	if shift == 0 {
		shift = 12
	}
	if shift < image.MinPageShift || shift > image.MaxPageShift {
		return fmt.Errorf("send pages: page shift %d", shift)
	}
	if len(b.Pages) != len(b.Indices)<<shift {
		return fmt.Errorf("send pages: %d bytes for %d pages", len(b.Pages), len(b.Indices))
	}
	ps, err := s.pageSender()
	if err != nil {
		return err
	}
	return ps.send(ctx, b, shift)
}

// FlushPages waits until every queued frame has been written to the page
// streams. Written is not received: the receiver's WaitRound says when
// frames were applied.
func (s *Session) FlushPages(ctx context.Context) error {
	if !s.dialer {
		return nil
	}
	ps, err := s.pageSender()
	if err != nil {
		return err
	}
	return ps.flush(ctx)
}

// SentStats returns the counters of pages sent in round.
func (s *Session) SentStats(round uint32) RoundStats {
	if p := s.sender.Load(); p != nil {
		return p.stats.get(round)
	}
	return RoundStats{}
}

// SentTotal returns the counters of all pages sent.
func (s *Session) SentTotal() RoundStats {
	if p := s.sender.Load(); p != nil {
		return p.stats.sum()
	}
	return RoundStats{}
}

func (s *Session) pageSender() (*pageSender, error) {
	s.senderOnce.Do(func() {
		p, err := newPageSender(s)
		if err != nil {
			s.fail(err, codeFailed)
			return
		}
		s.sender.Store(p)
	})
	if p := s.sender.Load(); p != nil {
		return p, nil
	}
	return nil, s.errOr(fmt.Errorf("page sender: %w", ErrClosed))
}

type encodeJob struct {
	round   uint32
	start   uint64
	shift   uint8
	indices []uint32
	pages   []byte
	batch   *batchWait
}

type batchWait struct {
	wg   sync.WaitGroup
	once sync.Once
	err  error
}

func (w *batchWait) done(err error) {
	if err != nil {
		w.once.Do(func() { w.err = err })
	}
	w.wg.Done()
}

type outFrame struct {
	buf   []byte
	round uint32
	stats RoundStats
}

// pageSender turns batches into frames on a bounded pipeline:
// SendPages -> jobs -> encode workers -> out -> one writer per page stream.
// A fixed set of frame buffers circulates (free), so memory does not grow
// with the amount of pages sent.
type pageSender struct {
	s       *Session
	jobs    chan *encodeJob
	out     chan *outFrame
	free    chan *outFrame
	streams []*quic.SendStream
	stats   statsTable

	// closeMu guards enqueueing jobs against the end of the session: once
	// closed is set no job enters jobs, and the ones in it are drained.
	closeMu sync.RWMutex
	closed  bool

	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending == 0
	// tamper damages an encoded frame before it is written (tests only).
	tamper func([]byte)
}

// testHookTamper, set by a test before a session's first SendPages, becomes
// that session's pageSender.tamper.
var testHookTamper func([]byte)

func newPageSender(s *Session) (*pageSender, error) {
	o := &s.t.opts
	p := &pageSender{s: s, idle: make(chan struct{}), tamper: testHookTamper}
	if n := s.t.opts.CorruptFrame; n > 0 && p.tamper == nil {
		var count atomic.Int64
		p.tamper = func(fr []byte) {
			if count.Add(1) == int64(n) && len(fr) > 0 {
				fr[len(fr)-1] ^= 0x5a // the last byte: payload, or the zero bitmap
			}
		}
	}
	close(p.idle)
	ctx, cancel := context.WithTimeout(context.Background(), o.HandshakeTimeout)
	defer cancel()
	for _, c := range s.pageConns {
		for i := 0; i < o.StreamsPerConn; i++ {
			st, err := c.OpenUniStreamSync(ctx)
			if err != nil {
				return nil, classify("open page stream", err)
			}
			p.streams = append(p.streams, st)
		}
	}
	if len(p.streams) == 0 {
		return nil, fmt.Errorf("page sender: %w: no page connections", ErrProtocol)
	}
	p.jobs = make(chan *encodeJob, o.QueueFrames)
	p.out = make(chan *outFrame, o.QueueFrames)
	nbuf := o.EncodeWorkers + cap(p.out) + len(p.streams)
	p.free = make(chan *outFrame, nbuf)
	for i := 0; i < nbuf; i++ {
		p.free <- &outFrame{}
	}
	codec := s.t.codec
	for i := 0; i < o.EncodeWorkers; i++ {
		enc, err := image.NewFrameEncoder(codec)
		if err != nil {
			return nil, err
		}
		go p.encodeLoop(enc)
	}
	for _, st := range p.streams {
		go p.writeLoop(st)
	}
	go func() {
		<-s.done
		p.closeMu.Lock()
		p.closed = true
		p.closeMu.Unlock()
		p.drainJobs()
	}()
	return p, nil
}

func (p *pageSender) send(ctx context.Context, b PageBatch, shift uint8) error {
	o := &p.s.t.opts
	per := min(o.FramePages, image.MaxFramePayload>>shift)
	w := &batchWait{}
	for i := 0; i < len(b.Indices); i += per {
		j := min(i+per, len(b.Indices))
		job := &encodeJob{round: b.Round, start: b.Start, shift: shift,
			indices: b.Indices[i:j], pages: b.Pages[i<<shift : j<<shift], batch: w}
		if err := p.enqueue(ctx, job); err != nil {
			w.wg.Wait()
			return err
		}
	}
	// The workers read b.Pages until every job is done: wait for them even
	// if the session fails meanwhile (they finish each job they hold).
	w.wg.Wait()
	if w.err != nil {
		return w.err
	}
	return p.s.Err()
}

func (p *pageSender) enqueue(ctx context.Context, job *encodeJob) error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return p.s.Err()
	}
	job.batch.wg.Add(1)
	p.addPending(1)
	select {
	case p.jobs <- job:
		return nil
	case <-p.s.done:
		job.batch.wg.Done()
		p.addPending(-1)
		return p.s.Err()
	case <-ctx.Done():
		job.batch.wg.Done()
		p.addPending(-1)
		return ctx.Err()
	}
}

func (p *pageSender) addPending(d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == 0 && d > 0 {
		p.idle = make(chan struct{})
	}
	p.pending += d
	if p.pending == 0 && d < 0 {
		close(p.idle)
	}
}

func (p *pageSender) flush(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return p.s.Err()
	case <-p.s.done:
		return p.s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pageSender) encodeLoop(enc *image.FrameEncoder) {
	defer enc.Close()
	for {
		var job *encodeJob
		select {
		case job = <-p.jobs:
		case <-p.s.done:
			return
		}
		var fr *outFrame
		select {
		case fr = <-p.free:
		case <-p.s.done:
			p.addPending(-1)
			job.batch.done(p.s.Err())
			return
		}
		// Random-looking pages travel in a raw frame of their own, behind
		// the compressed frame of the rest (one or two frames per job).
		var err error
		var frames int
		fr.buf, frames, err = enc.EncodeSplit(fr.buf[:0], job.round, job.start, job.shift, job.indices, job.pages)
		n := uint64(len(job.indices))
		fr.round = job.round
		fr.stats = RoundStats{Frames: uint64(frames), Pages: n, MemoryBytes: n << job.shift, WireBytes: uint64(len(fr.buf))}
		if err != nil {
			p.free <- fr
			p.addPending(-1)
			job.batch.done(fmt.Errorf("send pages: %w", err))
			continue
		}
		// The job's pages are no longer needed: release the caller
		// before the frame waits for a stream.
		job.batch.done(nil)
		select {
		case p.out <- fr:
		case <-p.s.done:
			p.free <- fr
			p.addPending(-1)
		}
	}
}

// drainJobs completes jobs still queued when the session ended, so that no
// SendPages waits forever.
func (p *pageSender) drainJobs() {
	for {
		select {
		case job := <-p.jobs:
			p.addPending(-1)
			job.batch.done(p.s.Err())
		default:
			return
		}
	}
}

func (p *pageSender) writeLoop(st *quic.SendStream) {
	stall := p.s.t.opts.StallTimeout
	for {
		var fr *outFrame
		select {
		case fr = <-p.out:
		case <-p.s.done:
			st.CancelWrite(0)
			return
		}
		if !p.s.limiter.take(len(fr.buf), p.s.done) {
			p.free <- fr
			p.addPending(-1)
			continue
		}
		if p.tamper != nil {
			p.tamper(fr.buf)
		}
		err := writeFrame(st, fr.buf, stall)
		if err != nil {
			p.s.fail(classify("write page frame", err), codeFailed)
		} else {
			p.stats.add(fr.round, fr.stats)
		}
		p.free <- fr
		p.addPending(-1)
	}
}

// writeFrame writes one frame in chunks of frameWriteChunk, renewing the
// write deadline before each: StallTimeout means "no progress for that
// long", not "slower than one frame per StallTimeout". With several frames
// of a few MiB in flight on a slow path (two TCG guests on a loaded machine
// move 0.3-0.5 MB/s), one frame can wait behind the others for longer than
// the timeout while bytes keep flowing. A chunk is large enough that the
// hand-off to quic-go's connection goroutine per Write stays cheap.
func writeFrame(st *quic.SendStream, b []byte, stall time.Duration) error {
	for len(b) > 0 {
		n := min(len(b), frameWriteChunk)
		st.SetWriteDeadline(time.Now().Add(stall))
		if _, err := st.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// frameWriteChunk is how much of a frame one Write hands to quic-go.
const frameWriteChunk = 256 << 10

// ReceivePages starts handing the pages the peer sends to sink; it returns
// at once. Call it once, on the accepting side, before the peer's first
// round. Frames are read and decompressed in parallel, then applied one at
// a time; a page already written by a later round is never overwritten by
// an earlier one.
//
// Cost of that guarantee: 4 bytes per page ever received (the latest round
// that wrote it), allocated in chunks of 512 pages as pages arrive: 1 MiB
// per GiB of 4 KiB pages.
func (s *Session) ReceivePages(sink PageSink) error {
	if s.dialer {
		return fmt.Errorf("receive pages: %w: pages flow to the accepting side", ErrProtocol)
	}
	started := false
	s.recvOnce.Do(func() {
		s.receiver.Store(newPageReceiver(s, sink))
		started = true
	})
	if !started {
		return errors.New("receive pages: already receiving")
	}
	return nil
}

// WaitRound waits until at least frames frames of round were applied to the
// sink (the sender's SentStats(round).Frames, carried in RoundDone).
func (s *Session) WaitRound(ctx context.Context, round uint32, frames uint64) error {
	r := s.receiver.Load()
	if r == nil {
		return errors.New("wait round: ReceivePages was not called")
	}
	for {
		ch := r.waitFor(round, frames)
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			// Frames applied before the end still count.
			if r.stats.get(round).Frames >= frames {
				return nil
			}
			return s.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ReceivedStats returns the counters of pages received in round.
func (s *Session) ReceivedStats(round uint32) RoundStats {
	if r := s.receiver.Load(); r != nil {
		return r.stats.get(round)
	}
	return RoundStats{}
}

// ReceivedTotal returns the counters of all pages received.
func (s *Session) ReceivedTotal() RoundStats {
	if r := s.receiver.Load(); r != nil {
		return r.stats.sum()
	}
	return RoundStats{}
}

type inFrame struct{ buf []byte }

type roundWaiter struct {
	round  uint32
	frames uint64
	ch     chan struct{}
}

// pageReceiver: one reader per page stream -> raw -> decode workers ->
// apply (serialized: the round check and the sink write are one step).
type pageReceiver struct {
	s    *Session
	sink PageSink
	raw  chan *inFrame
	free chan *inFrame

	applyMu sync.Mutex
	rounds  map[uint8]*roundTable
	vsink   VectorPageSink // sink, when it takes extents at once
	ext     []Extent       // apply's extents of one frame
	stats   statsTable

	waitMu  sync.Mutex
	waiters []*roundWaiter
}

func newPageReceiver(s *Session, sink PageSink) *pageReceiver {
	o := &s.t.opts
	r := &pageReceiver{s: s, sink: sink, rounds: map[uint8]*roundTable{}}
	r.vsink, _ = sink.(VectorPageSink)
	r.raw = make(chan *inFrame, o.QueueFrames)
	nbuf := o.DecodeWorkers + o.QueueFrames + o.PageConns*o.StreamsPerConn
	r.free = make(chan *inFrame, nbuf)
	for i := 0; i < nbuf; i++ {
		r.free <- &inFrame{}
	}
	for i := 0; i < o.DecodeWorkers; i++ {
		go r.decodeLoop()
	}
	go func() {
		for {
			select {
			case c := <-s.pageConnCh:
				go r.acceptStreams(c)
			case <-s.done:
				return
			}
		}
	}()
	return r
}

func (r *pageReceiver) acceptStreams(c *quic.Conn) {
	for {
		st, err := c.AcceptUniStream(c.Context())
		if err != nil {
			return // the connection ended: watchConn reports it
		}
		go r.readLoop(st)
	}
}

func (r *pageReceiver) readLoop(st *quic.ReceiveStream) {
	defer func() {
		// Once the session has ended, its connections are closed with the
		// reason: a STOP_SENDING sent first would reach the sender as a
		// broken stream instead.
		if r.s.Err() == nil {
			st.CancelRead(0)
		}
	}()
	for {
		var fr *inFrame
		select {
		case fr = <-r.free:
		case <-r.s.done:
			return
		}
		b, err := image.ReadFrame(st, &fr.buf)
		if err != nil {
			r.free <- fr
			if errors.Is(err, io.EOF) {
				return
			}
			code := quic.ApplicationErrorCode(codeFailed)
			if errors.Is(err, image.ErrBadFrame) {
				code = codeBadFrame
			}
			r.s.fail(classify("read page frame", err), code)
			return
		}
		fr.buf = b
		select {
		case r.raw <- fr:
		case <-r.s.done:
			return
		}
	}
}

func (r *pageReceiver) decodeLoop() {
	dec := image.NewFrameDecoder()
	defer dec.Close()
	for {
		var fr *inFrame
		select {
		case fr = <-r.raw:
		case <-r.s.done:
			return
		}
		f, err := dec.Decode(fr.buf)
		if err == nil && f.Round == math.MaxUint32 {
			err = fmt.Errorf("%w: reserved round", image.ErrBadFrame)
		}
		if err != nil {
			r.free <- fr
			r.s.fail(classify("decode page frame", err), codeBadFrame)
			return
		}
		r.applyMu.Lock()
		st, err := r.apply(f)
		r.applyMu.Unlock()
		r.free <- fr
		if err != nil {
			r.s.fail(fmt.Errorf("page sink: round %d: %w", f.Round, err), codeFailed)
			return
		}
		n := r.stats.add(f.Round, st)
		r.notify(f.Round, n.Frames)
	}
}

// apply writes the frame's pages that no later round has written. The
// caller holds applyMu.
func (r *pageReceiver) apply(f *image.Frame) (RoundStats, error) {
	st := RoundStats{Frames: 1, Pages: uint64(f.NumPages), MemoryBytes: uint64(f.NumPages) << f.PageShift, WireBytes: uint64(f.WireSize)}
	tab := r.rounds[f.PageShift]
	if tab == nil {
		tab = &roundTable{chunks: map[uint64]*roundChunk{}}
		r.rounds[f.PageShift] = tab
	}
	ps := 1 << f.PageShift
	r.ext = r.ext[:0]
	err := f.Extents(func(addr uint64, n int, data []byte) error {
		if data == nil {
			st.ZeroPages += uint64(n)
		}
		flush := func(from, to int) error {
			a := addr + uint64(from*ps)
			if data == nil {
				return r.sink.ZeroPages(f.Round, a, (to-from)*ps)
			}
			if r.vsink != nil {
				r.ext = append(r.ext, Extent{Addr: a, Data: data[from*ps : to*ps]})
				return nil
			}
			return r.sink.WritePages(f.Round, a, data[from*ps:to*ps])
		}
		from := -1
		for i := 0; i < n; i++ {
			if tab.admit((addr>>f.PageShift)+uint64(i), f.Round) {
				if from < 0 {
					from = i
				}
				continue
			}
			st.Skipped++
			if from >= 0 {
				if err := flush(from, i); err != nil {
					return err
				}
				from = -1
			}
		}
		if from >= 0 {
			return flush(from, n)
		}
		return nil
	})
	if err == nil && len(r.ext) > 0 {
		err = r.vsink.WriteExtents(f.Round, r.ext)
	}
	clear(r.ext)
	return st, err
}

func (r *pageReceiver) waitFor(round uint32, frames uint64) chan struct{} {
	r.waitMu.Lock()
	defer r.waitMu.Unlock()
	if r.stats.get(round).Frames >= frames {
		return nil
	}
	w := &roundWaiter{round: round, frames: frames, ch: make(chan struct{})}
	r.waiters = append(r.waiters, w)
	return w.ch
}

func (r *pageReceiver) notify(round uint32, frames uint64) {
	r.waitMu.Lock()
	defer r.waitMu.Unlock()
	kept := r.waiters[:0]
	for _, w := range r.waiters {
		if w.round == round && frames >= w.frames {
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	clear(r.waiters[len(kept):])
	r.waiters = kept
}

// roundTable remembers, per page, the latest round that wrote it (stored
// as round+1, so 0 means never), in chunks of chunkPages pages allocated as
// pages are first seen.
type roundTable struct {
	chunks  map[uint64]*roundChunk
	lastKey uint64
	last    *roundChunk
}

const chunkPages = 512

type roundChunk [chunkPages]uint32

// admit reports whether round may write page (a page number, address >>
// page shift) and records it as the page's latest round if so.
func (t *roundTable) admit(page uint64, round uint32) bool {
	key := page / chunkPages
	c := t.last
	if c == nil || key != t.lastKey {
		c = t.chunks[key]
		if c == nil {
			c = new(roundChunk)
			t.chunks[key] = c
		}
		t.last, t.lastKey = c, key
	}
	v := &c[page%chunkPages]
	if *v > round+1 {
		return false
	}
	*v = round + 1
	return true
}
