package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/migrated/migrated/image"
)

// ALPN is the application protocol both peers must speak.
const ALPN = "migrated/1"

// SecretSize is the size of the cluster secret.
const SecretSize = 32

// Options configure a Transport. The zero value of every field but
// ListenAddr and Secret (or Insecure) is a sensible default.
type Options struct {
	// ListenAddr is the UDP address the agent listens and dials from,
	// e.g. "0.0.0.0:7070" or "127.0.0.1:0".
	ListenAddr string
	// Secret is the 32-byte cluster secret (the one that also encrypts
	// gossip). Both peers of a session prove they know it.
	Secret []byte
	// Insecure allows running without a secret, for a single machine: both
	// sides then "prove" knowledge of an all-zero key, which anyone can.
	Insecure bool
	// Codec compresses page frames: "s2" (default), "zstd" (SpeedFastest,
	// for slow links) or "raw". Frames that do not compress go raw anyway.
	Codec string
	// PageConns is the number of QUIC connections that carry page frames
	// besides the control connection. Default DefaultPageConns.
	PageConns int
	// StreamsPerConn is the number of page streams on each page connection.
	// Default 1 (several streams on one quic-go connection do not go faster).
	StreamsPerConn int
	// FramePages is the most pages one frame carries. Default 128.
	FramePages int
	// EncodeWorkers and DecodeWorkers bound the goroutines compressing and
	// decompressing frames. Default GOMAXPROCS.
	EncodeWorkers, DecodeWorkers int
	// QueueFrames is the depth of the queues between the pipeline stages,
	// in frames (each at most FramePages pages), on each side. Deeper
	// queues hide scheduling delays on a busy host; memory grows with it.
	// Default 8.
	QueueFrames int
	// MaxBandwidth caps the page bytes on the wire per session, in bytes per
	// second (like QEMU's max-bandwidth). 0 means no cap.
	MaxBandwidth int64
	// IdleTimeout ends a session whose peer sent nothing for this long
	// (keep-alives are sent at a third of it). Default 15s.
	IdleTimeout time.Duration
	// StallTimeout ends a session when a page or control write made no
	// progress for this long (the peer stopped reading). Default 30s.
	StallTimeout time.Duration
	// CorruptFrame, when N > 0, flips one payload byte of the N-th page
	// frame each session sends: a test hook for the promise that a damaged
	// frame fails the move (ErrChecksum) and leaves the original running.
	CorruptFrame int
	// HandshakeTimeout bounds the QUIC handshake plus the secret proof.
	// Default 10s.
	HandshakeTimeout time.Duration
	// MaxControlMessage bounds one control message. Default 64 MiB.
	MaxControlMessage int
	// Logger receives warnings (UDP buffers) and refused peers. Default
	// slog.Default().
	Logger *slog.Logger
}

// DefaultPageConns is the default number of page connections, chosen by
// BenchmarkPageStream on a 2-core machine.
const DefaultPageConns = 2

func (o *Options) setDefaults() error {
	if o.PageConns <= 0 {
		o.PageConns = DefaultPageConns
	}
	if o.PageConns > maxPageConns {
		return fmt.Errorf("transport: %d page connections (max %d)", o.PageConns, maxPageConns)
	}
	if o.StreamsPerConn <= 0 {
		o.StreamsPerConn = 1
	}
	if o.StreamsPerConn > maxStreamsPerConn {
		return fmt.Errorf("transport: %d streams per connection (max %d)", o.StreamsPerConn, maxStreamsPerConn)
	}
	if o.FramePages <= 0 {
		o.FramePages = 128
	}
	if o.FramePages > image.MaxFramePages {
		o.FramePages = image.MaxFramePages
	}
	if o.QueueFrames <= 0 {
		o.QueueFrames = 8
	}
	if o.EncodeWorkers <= 0 {
		o.EncodeWorkers = runtime.GOMAXPROCS(0)
	}
	if o.DecodeWorkers <= 0 {
		o.DecodeWorkers = runtime.GOMAXPROCS(0)
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 15 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxControlMessage <= 0 {
		o.MaxControlMessage = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

const (
	maxPageConns      = 16
	maxStreamsPerConn = 8
	acceptBacklog     = 16
	maxSessions       = 64
)

// Transport is one agent's QUIC endpoint: one UDP socket that both listens
// for and dials sessions.
type Transport struct {
	opts     Options
	codec    image.Codec
	key      [SecretSize]byte
	udp      *net.UDPConn
	qt       *quic.Transport
	ln       *quic.Listener
	tlsSrv   *tls.Config
	tlsCli   *tls.Config
	buffers  BufferReport
	acceptCh chan *Session

	mu       sync.Mutex
	sessions map[sessionID]*Session // accepted sessions, by id
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the agent's UDP socket and starts listening. Without a secret it
// refuses (ErrNoSecret) unless opts.Insecure is set.
func New(opts Options) (*Transport, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	t := &Transport{opts: opts, acceptCh: make(chan *Session, acceptBacklog), sessions: map[sessionID]*Session{}}
	switch {
	case len(opts.Secret) == SecretSize:
		copy(t.key[:], opts.Secret)
	case len(opts.Secret) != 0:
		return nil, fmt.Errorf("transport: cluster secret of %d bytes, want %d", len(opts.Secret), SecretSize)
	case !opts.Insecure:
		return nil, ErrNoSecret
	}
	codec, err := image.ParseCodec(opts.Codec)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	t.codec = codec
	addr, err := net.ResolveUDPAddr("udp", opts.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen address %q: %w", opts.ListenAddr, err)
	}
	t.udp, err = net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	t.buffers = sizeUDPBuffers(t.udp)
	if w := t.buffers.Warning(); w != "" {
		opts.Logger.Warn(w)
	}
	cert, err := ephemeralCert()
	if err != nil {
		t.udp.Close()
		return nil, err
	}
	t.tlsSrv = &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}
	// The certificate proves nothing: peers authenticate with the secret,
	// bound to this TLS session by an exporter value (see auth.go).
	t.tlsCli = &tls.Config{
		InsecureSkipVerify: true,
		NextProtos:         []string{ALPN},
		MinVersion:         tls.VersionTLS13,
		ServerName:         "migrated",
	}
	t.qt = &quic.Transport{Conn: t.udp}
	t.ln, err = t.qt.Listen(t.tlsSrv, t.quicConfig(true))
	if err != nil {
		t.qt.Close()
		t.udp.Close()
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

func (t *Transport) quicConfig(server bool) *quic.Config {
	c := &quic.Config{
		HandshakeIdleTimeout: t.opts.HandshakeTimeout,
		MaxIdleTimeout:       t.opts.IdleTimeout,
		KeepAlivePeriod:      t.opts.IdleTimeout / 3,
		// Receive windows bound what a peer may make us buffer per
		// connection: 6 MiB is 60 MB/s per connection at 100 ms RTT.
		InitialStreamReceiveWindow:     1 << 20,
		MaxStreamReceiveWindow:         4 << 20,
		InitialConnectionReceiveWindow: 1 << 20,
		MaxConnectionReceiveWindow:     6 << 20,
		MaxIncomingStreams:             -1,
		MaxIncomingUniStreams:          -1,
	}
	if server {
		// The dialer opens one bidirectional stream (proof, then control
		// messages or nothing) and, on page connections, the page streams.
		c.MaxIncomingStreams = 1
		c.MaxIncomingUniStreams = maxStreamsPerConn
	}
	return c
}

// Addr is the UDP address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.udp.LocalAddr() }

// UDPBuffers says what socket buffers the kernel granted.
func (t *Transport) UDPBuffers() BufferReport { return t.buffers }

// Accept waits for the next authenticated session a peer dialed.
func (t *Transport) Accept(ctx context.Context) (*Session, error) {
	select {
	case s := <-t.acceptCh:
		return s, nil
	case <-t.ctx.Done():
		return nil, fmt.Errorf("accept: %w", ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends every session and closes the socket.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	sessions := make([]*Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		sessions = append(sessions, s)
	}
	t.mu.Unlock()
	t.cancel()
	for _, s := range sessions {
		s.Close()
	}
	for {
		select {
		case s := <-t.acceptCh:
			s.Close()
			continue
		default:
		}
		break
	}
	t.ln.Close()
	err := t.qt.Close()
	t.udp.Close()
	t.wg.Wait()
	return err
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		conn, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.admit(conn)
		}()
	}
}

// admit authenticates an incoming connection and attaches it to a new
// session (control connection) or to the session it names (page
// connection). Nothing but the proof is read before the peer is proven.
func (t *Transport) admit(conn *quic.Conn) {
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.HandshakeTimeout)
	defer cancel()
	var s *Session
	st, hello, err := t.proveListener(ctx, conn, func(h authHello) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		switch {
		case t.closed:
			return ErrClosed
		case h.kind == kindPages:
			if s = t.sessions[h.id]; s == nil {
				return errNoSession
			}
		case t.sessions[h.id] != nil || len(t.sessions) >= maxSessions:
			return errNoSession
		default:
			// Registered before the proof reply goes out, so that the
			// page connections the dialer opens next find it.
			s = newSession(t, h.id, false, conn)
			t.sessions[h.id] = s
		}
		return nil
	})
	if err != nil {
		code, msg := codeAuth, "authentication failed"
		switch {
		case errors.Is(err, errNoSession):
			code, msg = codeNoSession, "unknown session"
		case errors.Is(err, ErrClosed):
			code, msg = codeClosed, "closing"
		case !errors.Is(err, ErrAuth):
			code, msg = codeProtocol, "bad hello"
		}
		t.opts.Logger.Warn("transport: refused peer", "remote", conn.RemoteAddr(), "err", err)
		conn.CloseWithError(code, msg)
		if s != nil && hello.kind == kindControl {
			t.forget(s)
		}
		return
	}
	switch hello.kind {
	case kindControl:
		s.setControl(st)
		go s.watch()
		select {
		case t.acceptCh <- s:
		default:
			s.fail(fmt.Errorf("accept: %w: backlog full", ErrClosed), codeFailed)
		}
	case kindPages:
		st.CancelRead(0)
		st.Close()
		if !s.attachPageConn(conn) {
			conn.CloseWithError(codeNoSession, "too many page connections")
		}
	}
}

func (t *Transport) forget(s *Session) {
	t.mu.Lock()
	if t.sessions[s.id] == s {
		delete(t.sessions, s.id)
	}
	t.mu.Unlock()
}

// Dial opens a session to the agent at addr (host:port, UDP): a control
// connection and Options.PageConns page connections, each authenticated.
func (t *Transport) Dial(ctx context.Context, addr string) (*Session, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var id sessionID
	rand.Read(id[:])
	conn, st, err := t.dialOne(ctx, raddr, authHello{kind: kindControl, id: id})
	if err != nil {
		return nil, err
	}
	s := newSession(t, id, true, conn)
	s.setControl(st)
	for i := 0; i < t.opts.PageConns; i++ {
		pc, pst, err := t.dialOne(ctx, raddr, authHello{kind: kindPages, id: id})
		if err != nil {
			s.Close()
			return nil, err
		}
		pst.CancelRead(0)
		pst.Close()
		s.pageConns = append(s.pageConns, pc)
	}
	go s.watch()
	return s, nil
}

func (t *Transport) dialOne(ctx context.Context, raddr *net.UDPAddr, h authHello) (*quic.Conn, *quic.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.HandshakeTimeout)
	defer cancel()
	conn, err := t.qt.Dial(ctx, raddr, t.tlsCli, t.quicConfig(false))
	if err != nil {
		return nil, nil, classify(fmt.Sprintf("dial %s", raddr), err)
	}
	st, err := t.proveDialer(ctx, conn, h)
	if err != nil {
		code := codeAuth
		if !errors.Is(err, ErrAuth) {
			code = codeFailed
		}
		conn.CloseWithError(code, "authentication failed")
		return nil, nil, err
	}
	return conn, st, nil
}

// ephemeralCert makes a self-signed P-256 certificate for this process. It
// identifies nothing; it only lets TLS run.
func ephemeralCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "migrated"},
		DNSNames:     []string{"migrated"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
