// Package transport is the wire between two agents: authenticated QUIC
// sessions that carry the control conversation of a move (image.Control
// messages) and its memory pages (image page frames).
//
// It owns the QUIC endpoint (one quic.Transport on one UDP socket that both
// listens and dials, ALPN "migrated/1"), peer authentication from the
// cluster secret, the control stream, and the page pipeline: compression in
// parallel, several page connections, backpressure, a bandwidth cap, and the
// rule that a page written by round k+1 is never overwritten by round k. It
// does not know what a move is, what a process is, or where pages go: the
// agent drives the conversation and the sink writes the pages.
//
// # Use
//
// Both agents:
//
//	tr, err := transport.New(transport.Options{
//		ListenAddr:   ":7070",
//		Secret:       clusterSecret, // 32 bytes; or Insecure: true on one machine
//		MaxBandwidth: 0,             // bytes/s on the wire, 0 = no cap
//	})
//	defer tr.Close()
//
// Source (dials; pages flow from the dialer to the acceptor):
//
//	s, err := tr.Dial(ctx, "10.0.0.2:7070")      // control + page connections, authenticated
//	s.Send(&image.Control{Msg: &image.Control_Manifest{...}})
//	v, err := s.Recv(ctx)                         // Verdict
//	for each round r, for each batch of pages read from the task:
//		s.SendPages(ctx, transport.PageBatch{Round: r, Start: vma.Start, Indices: idx, Pages: buf})
//		// returns once buf is encoded: reuse buf for the next batch
//	s.FlushPages(ctx)
//	st := s.SentStats(r)                          // Frames, Pages, MemoryBytes, WireBytes
//	s.Send(&image.Control{Msg: &image.Control_RoundDone{RoundDone: &image.RoundDone{Round: r, Frames: st.Frames, ...}}})
//
// Destination (accepts):
//
//	s, err := tr.Accept(ctx)
//	m, err := s.Recv(ctx)                         // Manifest ...
//	s.ReceivePages(sink)                          // before the first round; returns at once
//	// on RoundDone{Round: r, Frames: n}:
//	s.WaitRound(ctx, r, n)                        // every frame of round r is in the sink
//	s.Send(&image.Control{Msg: &image.Control_RoundAck{...}})
//
// The sink (restore's stub writer) implements PageSink: WritePages(round,
// addr, data) and ZeroPages(round, addr, size). Its calls never overlap. A
// sink that also implements VectorPageSink gets all the data extents of a
// frame in one WriteExtents call (one process_vm_writev instead of one per
// extent of a few pages).
//
// Each batch of pages becomes one or two frames per FramePages pages: the
// pages that look random (image.Incompressible, a sample of 128 bytes) go
// raw in a frame of their own, so that neither end runs the codec over
// bytes it cannot shrink; zero pages and the rest go in a compressed frame.
//
// # Failure
//
// A session ends at its first error, on both sides; every later call returns
// that error. Act on it with errors.Is: ErrAuth (the peer does not know the
// secret), ErrIdleTimeout (the peer stopped answering or stopped reading),
// ErrConnBroken (a connection broke), ErrChecksum (a damaged page frame),
// ErrClosed (Close on either side), ErrMessageTooLarge, ErrProtocol. The
// move decides what to do; the transport never retries.
//
// # Costs and bounds
//
// Memory is bounded by the options, never by the size of the process: the
// sender holds EncodeWorkers + QueueFrames + page streams frame buffers
// (each at most FramePages pages: 512 KiB by default), the receiver
// DecodeWorkers + QueueFrames + page streams, plus QUIC's receive windows
// (at most 6 MiB per connection). The round check
// costs 4 bytes per page ever received (1 MiB per GiB of 4 KiB pages).
//
// Wire format of the frames: see image/pageframe.go. The proof exchange: see
// auth.go. A control message is a uvarint length followed by the protobuf
// encoding of one image.Control.
package transport
