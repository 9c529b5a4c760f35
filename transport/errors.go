package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/quic-go/quic-go"

	"github.com/migrated/migrated/image"
)

// Errors a caller acts on. Every error a Session returns wraps exactly one of
// them (test with errors.Is); the wrapped quic-go error says more.
var (
	// ErrAuth: the peer could not prove it knows the cluster secret, or
	// refused our proof.
	ErrAuth = errors.New("transport: peer authentication failed")
	// ErrIdleTimeout: the peer stopped answering (QUIC idle timeout), or
	// stopped reading so that a write made no progress for StallTimeout.
	ErrIdleTimeout = errors.New("transport: peer stalled (idle timeout)")
	// ErrConnBroken: a connection of the session broke (reset, closed
	// abnormally, or a stream was cancelled).
	ErrConnBroken = errors.New("transport: connection broken")
	// ErrChecksum: a page frame failed its checksum or did not follow the
	// format. The receiver ends the session; the sender sees the same error.
	ErrChecksum = errors.New("transport: bad page frame")
	// ErrClosed: the session was closed, by this side or by the peer.
	ErrClosed = errors.New("transport: session closed")
	// ErrNoSecret: no cluster secret and Options.Insecure not set.
	ErrNoSecret = errors.New("transport: no cluster secret (set Insecure for a single machine)")
	// ErrMessageTooLarge: a control message exceeds MaxControlMessage.
	ErrMessageTooLarge = errors.New("transport: control message too large")
	// ErrProtocol: the peer sent something this version does not understand.
	ErrProtocol = errors.New("transport: protocol violation")
)

// Application error codes carried in QUIC CONNECTION_CLOSE frames, so that
// the peer learns why a session ended.
const (
	codeClosed    quic.ApplicationErrorCode = 0
	codeAuth      quic.ApplicationErrorCode = 0x101
	codeBadFrame  quic.ApplicationErrorCode = 0x102
	codeProtocol  quic.ApplicationErrorCode = 0x103
	codeNoSession quic.ApplicationErrorCode = 0x104
	codeFailed    quic.ApplicationErrorCode = 0x105
)

// classify wraps err from quic-go (or from the frame decoder) in the
// sentinel the caller acts on. Errors that already carry one are returned
// unchanged.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrAuth, ErrIdleTimeout, ErrConnBroken, ErrChecksum, ErrClosed, ErrMessageTooLarge, ErrProtocol} {
		if errors.Is(err, s) {
			return err
		}
	}
	var (
		idle  *quic.IdleTimeoutError
		hs    *quic.HandshakeTimeoutError
		app   *quic.ApplicationError
		trErr *quic.TransportError
	)
	sentinel := ErrConnBroken
	switch {
	case errors.As(err, &idle), errors.As(err, &hs), errors.Is(err, os.ErrDeadlineExceeded):
		sentinel = ErrIdleTimeout
	case errors.Is(err, image.ErrFrameChecksum), errors.Is(err, image.ErrBadFrame):
		sentinel = ErrChecksum
	case errors.As(err, &app):
		switch app.ErrorCode {
		case codeAuth:
			sentinel = ErrAuth
		case codeBadFrame:
			sentinel = ErrChecksum
		case codeProtocol, codeNoSession:
			sentinel = ErrProtocol
		case codeClosed:
			sentinel = ErrClosed
		}
	case errors.As(err, &trErr):
		// A TLS alert during the handshake: ALPN or version mismatch.
		if trErr.ErrorCode.IsCryptoError() {
			sentinel = ErrAuth
		}
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		sentinel = ErrClosed
	}
	return fmt.Errorf("%s: %w: %w", op, sentinel, err)
}
