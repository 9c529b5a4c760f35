package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func startNode(t *testing.T, name, ip string, secret []byte, tasks uint32) *Cluster {
	t.Helper()
	var n atomic.Uint32
	n.Store(tasks)
	return startNodeCounting(t, name, ip, secret, &n)
}

// startNodeCounting starts a node whose managed-task count is *tasks at
// every metadata refresh.
func startNodeCounting(t *testing.T, name, ip string, secret []byte, tasks *atomic.Uint32) *Cluster {
	t.Helper()
	c, err := Start(Config{
		Name:    name,
		Bind:    netip.AddrPortFrom(netip.MustParseAddr(ip), 0),
		Secret:  secret,
		Profile: ProfileLocal,
		Meta: func() Meta {
			m := amd64Meta()
			m.Tasks = tasks.Load()
			return m
		},
		RefreshInterval: 200 * time.Millisecond,
		Logger:          testLogger(t),
	})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { c.Leave(time.Second) })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %v", d, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func states(c *Cluster) map[string]State {
	s := map[string]State{}
	for _, m := range c.Members() {
		s[m.Name] = m.State
	}
	return s
}

func expect(c *Cluster, want map[string]State) error {
	got := states(c)
	if len(got) != len(want) {
		return fmt.Errorf("%s sees %v, want %v", c.Name(), got, want)
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("%s sees %v, want %v", c.Name(), got, want)
		}
	}
	return nil
}

func TestThreeNodes(t *testing.T) {
	secret, _ := NewSecret()
	a := startNode(t, "a", "127.0.0.1", secret, 1)
	b := startNode(t, "b", "127.0.0.2", secret, 2)
	c := startNode(t, "c", "127.0.0.3", secret, 3)
	events, cancel := a.Subscribe(16)
	defer cancel()

	ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, n := range []*Cluster{b, c} {
		if _, err := n.Join(ctx, []string{a.LocalAddr().String()}); err != nil {
			t.Fatal(err)
		}
	}
	all := map[string]State{"a": StateAlive, "b": StateAlive, "c": StateAlive}
	for _, n := range []*Cluster{a, b, c} {
		waitFor(t, 10*time.Second, "three alive", func() error { return expect(n, all) })
	}
	for _, m := range b.Members() {
		want := map[string]uint32{"a": 1, "b": 2, "c": 3}[m.Name]
		if m.Meta == nil || m.Meta.Tasks != want || m.Meta.Caps.HWCap != 0x178bebff || m.Meta.Caps.VDSO == nil {
			t.Errorf("b's view of %s: meta %+v (%s)", m.Name, m.Meta, m.MetaError)
		}
		if m.Local != (m.Name == "b") {
			t.Errorf("b's view of %s: local=%v", m.Name, m.Local)
		}
	}
	select {
	case ev := <-events:
		if ev.Kind != EventJoin {
			t.Errorf("first event %v", ev)
		}
	case <-time.After(time.Second):
		t.Error("no join event")
	}

	// A node with another secret cannot join, and nobody ever sees it.
	other, _ := NewSecret()
	d := startNode(t, "d", "127.0.0.4", other, 0)
	jctx, jdone := context.WithTimeout(context.Background(), time.Second)
	defer jdone()
	if _, err := d.Join(jctx, []string{a.LocalAddr().String(), b.LocalAddr().String()}); !errors.Is(err, ErrJoin) {
		t.Fatalf("join with a wrong secret: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, n := range []*Cluster{a, b, c} {
		if err := expect(n, all); err != nil {
			t.Error(err)
		}
	}
	if err := expect(d, map[string]State{"d": StateAlive}); err != nil {
		t.Error(err)
	}

	// c leaves gracefully: a and b see it as left.
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Cluster{a, b} {
		waitFor(t, 3*time.Second, "c left", func() error {
			return expect(n, map[string]State{"a": StateAlive, "b": StateAlive, "c": StateLeft})
		})
	}
}

// TestFailedNode: a node that stops without leaving is declared failed.
func TestFailedNode(t *testing.T) {
	secret, _ := NewSecret()
	a := startNode(t, "a", "127.0.0.1", secret, 0)
	b := startNode(t, "b", "127.0.0.2", secret, 0)
	ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if _, err := b.Join(ctx, []string{a.LocalAddr().String()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "two alive", func() error {
		return expect(a, map[string]State{"a": StateAlive, "b": StateAlive})
	})
	b.shutdown(false, 0) // no leave message
	waitFor(t, 20*time.Second, "b failed", func() error {
		return expect(a, map[string]State{"a": StateAlive, "b": StateFailed})
	})
}

// TestMetaRefresh: a change of a node's metadata reaches its peers through
// the periodic refresh (UpdateNode).
func TestMetaRefresh(t *testing.T) {
	secret, _ := NewSecret()
	var tasks atomic.Uint32
	a := startNodeCounting(t, "a", "127.0.0.1", secret, &tasks)
	b := startNode(t, "b", "127.0.0.2", secret, 0)
	ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if _, err := b.Join(ctx, []string{a.LocalAddr().String()}); err != nil {
		t.Fatal(err)
	}
	events, cancel := b.Subscribe(64)
	defer cancel()
	tasks.Store(42)
	waitFor(t, 3*time.Second, "b sees a's new task count", func() error {
		for _, m := range b.Members() {
			if m.Name == "a" && m.Meta != nil && m.Meta.Tasks == 42 {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	for {
		select {
		case ev := <-events:
			if ev.Kind == EventUpdate && ev.Member.Name == "a" && ev.Member.Meta.Tasks == 42 {
				return
			}
		case <-time.After(time.Second):
			t.Fatal("no update event for a")
		}
	}
}
