package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Errors an endpoint returns to say how the request failed; the API maps
// them to HTTP statuses and the Client maps those back (errors.Is works on
// both sides).
var (
	ErrBadRequest   = errors.New("bad request")
	ErrNotPermitted = errors.New("not permitted")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrUnavailable  = errors.New("unavailable")
)

var errorStatus = []struct {
	err    error
	status int
	code   string
}{
	{ErrBadRequest, http.StatusBadRequest, "bad_request"},
	{ErrNotPermitted, http.StatusForbidden, "not_permitted"},
	{ErrNotFound, http.StatusNotFound, "not_found"},
	{ErrConflict, http.StatusConflict, "conflict"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
}

// APIError is the JSON body of every failed request.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *APIError) Error() string { return e.Message }

// Is matches the sentinel of the error's code.
func (e *APIError) Is(target error) bool {
	for _, s := range errorStatus {
		if s.err == target {
			return s.code == e.Code
		}
	}
	return false
}

func apiError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	for _, s := range errorStatus {
		if errors.Is(err, s.err) {
			return &APIError{Status: s.status, Code: s.code, Message: err.Error()}
		}
	}
	return &APIError{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}

// HandlerFunc serves one control API request. It returns the value to send
// as JSON (status 200), or an error (see ErrBadRequest and friends).
// r.Context() carries the caller's credentials: PeerCred.
type HandlerFunc func(a *Agent, r *http.Request) (any, error)

// RawHandlerFunc serves a request that needs the ResponseWriter itself
// (streaming progress, for example).
type RawHandlerFunc func(a *Agent, w http.ResponseWriter, r *http.Request)

type endpoint struct {
	pattern string
	json    HandlerFunc
	raw     RawHandlerFunc
}

var (
	endpointsMu sync.Mutex
	endpoints   = map[string]endpoint{}
)

// RegisterEndpoint adds a control API route, from an init function of any
// file of this package. The pattern is a net/http.ServeMux pattern with a
// method, for example "GET /v1/proc/{pid}". Registering a pattern twice
// panics at start-up (a programming error).
func RegisterEndpoint(pattern string, h HandlerFunc) {
	register(endpoint{pattern: pattern, json: h})
}

// RegisterRawEndpoint is RegisterEndpoint for a handler that writes the
// response itself.
func RegisterRawEndpoint(pattern string, h RawHandlerFunc) {
	register(endpoint{pattern: pattern, raw: h})
}

func register(e endpoint) {
	endpointsMu.Lock()
	defer endpointsMu.Unlock()
	if !strings.Contains(e.pattern, " /") {
		panic(fmt.Sprintf("agent: endpoint %q has no method", e.pattern))
	}
	if _, dup := endpoints[e.pattern]; dup {
		panic(fmt.Sprintf("agent: endpoint %q registered twice", e.pattern))
	}
	endpoints[e.pattern] = e
}

// Endpoints lists the registered patterns, sorted.
func Endpoints() []string {
	endpointsMu.Lock()
	defer endpointsMu.Unlock()
	var out []string
	for p := range endpoints {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (a *Agent) controlHandler() http.Handler {
	mux := http.NewServeMux()
	endpointsMu.Lock()
	defer endpointsMu.Unlock()
	for pattern, e := range endpoints {
		e := e
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			if e.raw != nil {
				e.raw(a, rec, r)
			} else {
				v, err := e.json(a, r)
				if err != nil {
					WriteError(rec, err)
				} else {
					WriteJSON(rec, http.StatusOK, v)
				}
			}
			cred, _ := PeerCred(r.Context())
			a.metrics.requests.WithLabelValues(pattern, fmt.Sprint(rec.status)).Inc()
			a.log.Debug("control request", "pattern", pattern, "path", r.URL.Path, "status", rec.status,
				"uid", cred.Uid, "pid", cred.Pid)
		}))
	}
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// WriteJSON sends v as the JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError sends err as an APIError with the status its sentinel maps to.
func WriteError(w http.ResponseWriter, err error) {
	ae := apiError(err)
	WriteJSON(w, ae.Status, ae)
}

// DecodeJSON reads a request body of at most 1 MiB into v.
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrBadRequest, err)
	}
	return nil
}

type credKey struct{}

// PeerCred returns the SO_PEERCRED credentials of the process that opened
// the control connection. ok is false only outside a control request.
func PeerCred(ctx context.Context) (unix.Ucred, bool) {
	c, ok := ctx.Value(credKey{}).(unix.Ucred)
	return c, ok
}

// connContext reads SO_PEERCRED once per connection. A connection whose
// credentials cannot be read gets an impossible uid, so every
// authorisation fails.
func connContext(ctx context.Context, c net.Conn) context.Context {
	cred := unix.Ucred{Pid: -1, Uid: ^uint32(0), Gid: ^uint32(0)}
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if u, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					cred = *u
				}
			})
		}
	}
	return context.WithValue(ctx, credKey{}, cred)
}
