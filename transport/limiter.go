package transport

import (
	"sync"
	"time"
)

// tokenBucket caps a byte rate. A caller takes n bytes at once and may go
// into debt; the next caller waits the debt off. Burst is 50 ms of rate.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; 0: no cap
	tokens float64
	last   time.Time
}

func newTokenBucket(bytesPerSecond int64) *tokenBucket {
	b := &tokenBucket{}
	b.setRate(bytesPerSecond)
	return b
}

func (b *tokenBucket) setRate(bytesPerSecond int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = float64(max(bytesPerSecond, 0))
	b.tokens = 0
	b.last = time.Now()
}

// take takes n bytes, waiting until the bucket allows them or done closes.
// It reports false when done closed first.
func (b *tokenBucket) take(n int, done <-chan struct{}) bool {
	b.mu.Lock()
	if b.rate == 0 {
		b.mu.Unlock()
		return true
	}
	now := time.Now()
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	b.last = now
	if burst := b.rate / 20; b.tokens > burst {
		b.tokens = burst
	}
	b.tokens -= float64(n)
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
