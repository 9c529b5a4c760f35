package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/migrated/migrated/image"
)

// Session is one authenticated conversation between two agents: a control
// stream of image.Control messages and, from the dialer to the acceptor,
// page streams. It ends on Close or on the first error; Err says which.
type Session struct {
	t      *Transport
	id     sessionID
	dialer bool
	ctrl   *quic.Conn

	ctrlSt  *quic.Stream
	ctrlR   *bufio.Reader
	sendMu  sync.Mutex
	sendBuf []byte
	recvMu  sync.Mutex
	recvBuf []byte

	pageMu     sync.Mutex
	pageConns  []*quic.Conn
	pageConnCh chan *quic.Conn // acceptor: page connections as they arrive

	limiter *tokenBucket

	senderOnce sync.Once
	sender     atomic.Pointer[pageSender]
	recvOnce   sync.Once
	receiver   atomic.Pointer[pageReceiver]

	done    chan struct{}
	errOnce sync.Once
	err     error
}

func newSession(t *Transport, id sessionID, dialer bool, ctrl *quic.Conn) *Session {
	return &Session{
		t:          t,
		id:         id,
		dialer:     dialer,
		ctrl:       ctrl,
		pageConnCh: make(chan *quic.Conn, maxPageConns),
		limiter:    newTokenBucket(t.opts.MaxBandwidth),
		done:       make(chan struct{}),
	}
}

func (s *Session) setControl(st *quic.Stream) {
	s.ctrlSt = st
	s.ctrlR = bufio.NewReaderSize(st, 64<<10)
}

// attachPageConn adds a page connection the dialer opened (acceptor side).
func (s *Session) attachPageConn(c *quic.Conn) bool {
	s.pageMu.Lock()
	defer s.pageMu.Unlock()
	if len(s.pageConns) >= maxPageConns {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
	}
	s.pageConns = append(s.pageConns, c)
	s.pageConnCh <- c
	go s.watchConn(c)
	return true
}

// watch ends the session when any of its connections ends.
func (s *Session) watch() {
	s.pageMu.Lock()
	conns := append([]*quic.Conn{}, s.pageConns...)
	s.pageMu.Unlock()
	for _, c := range conns {
		go s.watchConn(c)
	}
	s.watchConn(s.ctrl)
}

func (s *Session) watchConn(c *quic.Conn) {
	select {
	case <-c.Context().Done():
		cause := context.Cause(c.Context())
		s.fail(classify("session", cause), codeFailed)
	case <-s.done:
	}
}

// fail ends the session with err (the first error wins) and closes every
// connection, telling the peer code.
func (s *Session) fail(err error, code quic.ApplicationErrorCode) {
	s.errOnce.Do(func() {
		s.err = err
		close(s.done)
		if s.t != nil {
			s.t.forget(s)
		}
		go func() {
			msg := "session failed"
			if code == codeClosed {
				msg = "closed"
			}
			s.pageMu.Lock()
			conns := append([]*quic.Conn{}, s.pageConns...)
			s.pageMu.Unlock()
			for _, c := range conns {
				c.CloseWithError(code, msg)
			}
			s.ctrl.CloseWithError(code, msg)
		}()
	})
}

// Err is the error that ended the session, or nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the session and tells the peer it was closed on purpose (the
// peer's calls then fail with ErrClosed). Pages still queued are dropped:
// FlushPages and a control acknowledgement come first.
func (s *Session) Close() error {
	s.fail(fmt.Errorf("session: %w", ErrClosed), codeClosed)
	<-s.ctrl.Context().Done()
	return nil
}

// RemoteAddr is the peer's UDP address.
func (s *Session) RemoteAddr() net.Addr { return s.ctrl.RemoteAddr() }

// ID is the session's random identifier, the same on both sides.
func (s *Session) ID() string { return fmt.Sprintf("%x", s.id[:]) }

// Send writes one control message. Messages arrive in order.
func (s *Session) Send(m *image.Control) error {
	if err := s.Err(); err != nil {
		return err
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	size := proto.Size(m)
	if size > s.t.opts.MaxControlMessage {
		return fmt.Errorf("send control: %w: %d bytes (max %d)", ErrMessageTooLarge, size, s.t.opts.MaxControlMessage)
	}
	b := binary.AppendUvarint(s.sendBuf[:0], uint64(size))
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
	if err != nil {
		return fmt.Errorf("send control: marshal: %w", err)
	}
	if cap(b) <= 1<<20 {
		s.sendBuf = b
	}
	s.ctrlSt.SetWriteDeadline(time.Now().Add(s.t.opts.StallTimeout))
	if _, err := s.ctrlSt.Write(b); err != nil {
		err = classify("send control", err)
		s.fail(err, codeFailed)
		return s.errOr(err)
	}
	return nil
}

// errOr returns the session's error when it has one (the first cause is
// more useful than the symptom), else err.
func (s *Session) errOr(err error) error {
	if e := s.Err(); e != nil {
		return e
	}
	return err
}

// Recv reads the next control message. A Recv cancelled by ctx before any
// byte of a message arrived leaves the session usable; cancelled in the
// middle of a message, it ends the session.
func (s *Session) Recv(ctx context.Context) (*image.Control, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	s.ctrlSt.SetReadDeadline(time.Time{})
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.ctrlSt.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // the next Recv must not see this deadline
		}
	}()
	m := new(image.Control)
	started := false
	err := readControl(s.ctrlR, s.t.opts.MaxControlMessage, &s.recvBuf, m, &started)
	if err == nil {
		if cap(s.recvBuf) > 1<<20 {
			s.recvBuf = nil
		}
		return m, nil
	}
	if ctx.Err() != nil && !started {
		return nil, ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: control stream ended", ErrClosed)
	}
	err = classify("recv control", err)
	code := codeFailed
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrMessageTooLarge) {
		code = codeProtocol
	}
	s.fail(err, code)
	return nil, s.errOr(err)
}

// readControl decodes one length-delimited control message: a uvarint
// length, then that many bytes of protobuf. The buffer grows only as bytes
// arrive, so a hostile length cannot make it allocate max bytes up front.
func readControl(r *bufio.Reader, max int, buf *[]byte, m *image.Control, started *bool) error {
	if _, err := r.ReadByte(); err != nil {
		return err
	}
	*started = true
	r.UnreadByte()
	size, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: message length: %w", ErrProtocol, err)
	}
	if size > uint64(max) {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrMessageTooLarge, size, max)
	}
	b := (*buf)[:0]
	for uint64(len(b)) < size {
		chunk := min(int(size)-len(b), 1<<20)
		if cap(b)-len(b) < chunk {
			nb := make([]byte, len(b), len(b)+chunk)
			copy(nb, b)
			b = nb
		}
		n, err := io.ReadFull(r, b[len(b):len(b)+chunk])
		b = b[:len(b)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	*buf = b
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: control message: %w", ErrProtocol, err)
	}
	return nil
}

// RTT is a generous bound on the control connection's round trip: the
// smoothed RTT plus four mean deviations (RFC 9002's PTO shape).
func (s *Session) RTT() time.Duration {
	st := s.ctrl.ConnectionStats()
	return st.SmoothedRTT + 4*st.MeanDeviation
}
