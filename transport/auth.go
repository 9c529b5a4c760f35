package transport

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"
)

// Peer authentication. Both ends of every connection prove they know the
// cluster secret K before anything else is read:
//
//	E = TLS exporter("EXPORTER-migrated/1 peer proof", no context, 32 bytes)
//	dialer   -> listener  "MGA1" kind(1) session-id(16) HMAC-SHA256(K, "dialer"   || E || kind || id)
//	listener -> dialer    "MGA1" status(1)              HMAC-SHA256(K, "listener" || E || kind || id)
//
// E is unique to one TLS session (it is derived from its handshake secrets),
// so a proof observed on one connection is worthless on any other, and a
// man in the middle, who holds two different sessions, cannot relay one.
// The two directions use different labels, so a proof cannot be reflected.
// The listener closes the connection with codeAuth on a bad proof, before it
// reads anything else; the dialer does the same.

const (
	exporterLabel = "EXPORTER-migrated/1 peer proof"
	authMagic     = "MGA1"
	helloSize     = 4 + 1 + 16 + sha256.Size
	replySize     = 4 + 1 + sha256.Size
)

type sessionID [16]byte

type connKind byte

const (
	kindControl connKind = 1
	kindPages   connKind = 2
)

type authHello struct {
	kind connKind
	id   sessionID
}

var errNoSession = errors.New("unknown session")

func (t *Transport) proof(conn *quic.Conn, role string, h authHello) ([]byte, error) {
	tlsState := conn.ConnectionState().TLS
	ekm, err := tlsState.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("tls exporter: %w", err)
	}
	m := hmac.New(sha256.New, t.key[:])
	m.Write([]byte(role))
	m.Write(ekm)
	m.Write([]byte{byte(h.kind)})
	m.Write(h.id[:])
	return m.Sum(nil), nil
}

// deadlineFromCtx applies ctx's deadline to a stream.
func deadlineFromCtx(ctx context.Context, st interface{ SetDeadline(time.Time) error }) {
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
}

// proveDialer runs the dialer's side of the proof on the connection's first
// stream and returns that stream.
func (t *Transport) proveDialer(ctx context.Context, conn *quic.Conn, h authHello) (*quic.Stream, error) {
	mac, err := t.proof(conn, "dialer", h)
	if err != nil {
		return nil, fmt.Errorf("auth: %w: %w", ErrAuth, err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, classify("auth: open stream", err)
	}
	deadlineFromCtx(ctx, st)
	msg := make([]byte, 0, helloSize)
	msg = append(msg, authMagic...)
	msg = append(msg, byte(h.kind))
	msg = append(msg, h.id[:]...)
	msg = append(msg, mac...)
	if err := t.sendHello(st, msg); err != nil {
		return nil, classify("auth: send proof", err)
	}
	var reply [replySize]byte
	if _, err := io.ReadFull(st, reply[:]); err != nil {
		return nil, classify("auth: read peer proof", err)
	}
	want, err := t.proof(conn, "listener", h)
	if err != nil {
		return nil, fmt.Errorf("auth: %w: %w", ErrAuth, err)
	}
	if string(reply[:4]) != authMagic || reply[4] != 0 {
		return nil, fmt.Errorf("auth: %w: bad reply header", ErrProtocol)
	}
	if !hmac.Equal(reply[5:], want) {
		return nil, fmt.Errorf("auth: %w: listener %s does not know the cluster secret", ErrAuth, conn.RemoteAddr())
	}
	st.SetDeadline(time.Time{})
	return st, nil
}

// sendHello writes the dialer's proof; tests replace it to replay proofs.
func (t *Transport) sendHello(st *quic.Stream, msg []byte) error {
	if testHookHello != nil {
		msg = testHookHello(msg)
	}
	_, err := st.Write(msg)
	return err
}

// testHookHello, when set by a test, rewrites the dialer's proof message.
var testHookHello func(msg []byte) []byte

// proveListener runs the listener's side on the first stream the peer opens.
// check may refuse the hello (an unknown session) after the proof holds.
func (t *Transport) proveListener(ctx context.Context, conn *quic.Conn, check func(authHello) error) (*quic.Stream, authHello, error) {
	var h authHello
	st, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil, h, classify("auth: accept stream", err)
	}
	deadlineFromCtx(ctx, st)
	var msg [helloSize]byte
	if _, err := io.ReadFull(st, msg[:]); err != nil {
		return nil, h, classify("auth: read proof", err)
	}
	if string(msg[:4]) != authMagic {
		return nil, h, fmt.Errorf("auth: %w: bad hello magic", ErrAuth)
	}
	h.kind = connKind(msg[4])
	copy(h.id[:], msg[5:21])
	want, err := t.proof(conn, "dialer", h)
	if err != nil {
		return nil, h, fmt.Errorf("auth: %w: %w", ErrAuth, err)
	}
	if !hmac.Equal(msg[21:], want) {
		return nil, h, fmt.Errorf("auth: %w: dialer %s does not know the cluster secret", ErrAuth, conn.RemoteAddr())
	}
	if h.kind != kindControl && h.kind != kindPages {
		return nil, h, fmt.Errorf("auth: %w: connection kind %d", ErrProtocol, h.kind)
	}
	if err := check(h); err != nil {
		return nil, h, err
	}
	mac, err := t.proof(conn, "listener", h)
	if err != nil {
		return nil, h, fmt.Errorf("auth: %w: %w", ErrAuth, err)
	}
	reply := make([]byte, 0, replySize)
	reply = append(reply, authMagic...)
	reply = append(reply, 0)
	reply = append(reply, mac...)
	if _, err := st.Write(reply); err != nil {
		return nil, h, classify("auth: send proof", err)
	}
	st.SetDeadline(time.Time{})
	return st, h, nil
}
