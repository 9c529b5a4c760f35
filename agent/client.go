package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ErrAgentNotRunning: nothing answers on the control socket.
var ErrAgentNotRunning = errors.New("agent not running")

// Client talks to an agent's control API.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client of the agent at socket ("" = ControlSocket()).
func NewClient(socket string) *Client {
	if socket == "" {
		socket = ControlSocket()
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	return &Client{
		Socket: socket,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			DisableKeepAlives: true,
		}},
	}
}

// Get fetches path into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// Do sends in (if not nil) as JSON and decodes the answer into out (if not
// nil). A failed request returns an *APIError (errors.Is with
// ErrNotPermitted and friends works); an unreachable agent returns an
// error wrapping ErrAgentNotRunning that names the socket.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://migrated"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: no agent answers on %s: %v (start one with `migrated agent`, or choose the socket with --control or %s)",
				ErrAgentNotRunning, c.Socket, op.Err, ControlEnv)
		}
		return fmt.Errorf("%s %s on %s: %w", method, path, c.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Code, ae.Message = "http", fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
