package rebalance

import (
	"errors"
	"fmt"
	"time"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// Config is the policy's tuning. DefaultConfig fills every field; each field
// says what it trades.
type Config struct {
	// Period is how often each node runs the policy. The policy itself only
	// uses it to express Cooldown and backoffs in periods in its sentences;
	// the agent's timer uses it (with Jitter).
	Period time.Duration `json:"period"`
	// Jitter is the fraction of Period by which each node shifts its run at
	// random, so that nodes do not act in lockstep (0.5: in [P/2, 3P/2)).
	Jitter float64 `json:"jitter"`
	// High is the hot watermark relative to the mean utilisation: a node
	// acts only above High*mean.
	High float64 `json:"high"`
	// Low is the target watermark relative to the mean: only a node below
	// Low*mean can be a target.
	Low float64 `json:"low"`
	// Ceiling is how high, relative to the mean, a target may get with the
	// task added; Low <= Ceiling < High, so that a target never becomes
	// hot by the move, with (High-Ceiling)*mean left as a margin for
	// measurement noise. A node's headroom is Ceiling*mean*CPUs - Load.
	Ceiling float64 `json:"ceiling"`
	// Spread is how much less headroom than the best a target may have and
	// still count as tied with it (0.25: at least 75% of the best). Ties go
	// to the node with the highest hash of (task ID, node ID), so that hot
	// nodes planning at the same time on the same gossip view spread their
	// tasks over the near-best targets instead of all choosing the one with
	// the most headroom. 0 means the most headroom, strictly.
	Spread float64 `json:"spread"`
	// Levelling allows, for a hot node that has no move keeping its target
	// under the ceiling, a move whose target ends no hotter than the source
	// after the move. It lets a node whose remaining tasks are each bigger
	// than any target's headroom (a tight compatibility pool, evenly loaded)
	// shed one, at the price of a target that may end above High. Such a
	// move cannot invert the pair, so the task never comes straight back,
	// and every levelling move lowers the pair's peak by at least MinGain.
	// On by default; with it off, a target never becomes hot, and such a
	// node stays hot (the simulator's seed 3 shows one for a whole phase).
	Levelling bool `json:"levelling"`
	// MinHotUtil is an absolute floor: a node under this utilisation is
	// never hot, however idle the rest of the cluster is.
	MinHotUtil float64 `json:"min_hot_util"`
	// Cooldown is how long a task stays put after it arrived by a move.
	Cooldown time.Duration `json:"cooldown"`
	// MinGain is the smallest score (gain minus cost, in utilisation of the
	// hotter node of the pair) worth a move.
	MinGain float64 `json:"min_gain"`
	// DowntimeLimit is the pre-copy switch-over downtime the move path will
	// accept; a move that would not converge within it is never proposed.
	DowntimeLimit time.Duration `json:"downtime_limit"`
	// MaxRounds caps the pre-copy rounds assumed by EstimateMove.
	MaxRounds int `json:"max_rounds"`
	// DefaultBandwidth (bytes/s) is used for a node whose Bandwidth is 0.
	DefaultBandwidth float64 `json:"default_bandwidth"`
	// CostPerGiB is the cost, in utilisation, of sending one GiB.
	CostPerGiB float64 `json:"cost_per_gib"`
	// CostPerDowntimeSecond is the cost, in utilisation, of one second of
	// expected downtime.
	CostPerDowntimeSecond float64 `json:"cost_per_downtime_second"`
	// MemoryReserve is memory a target keeps free beyond the task's RSS.
	MemoryReserve uint64 `json:"memory_reserve"`
	// Backoff is how long a task/target pair is avoided after its first
	// failure; each further failure doubles it, up to MaxBackoff.
	Backoff    time.Duration `json:"backoff"`
	MaxBackoff time.Duration `json:"max_backoff"`
	// Compatible says whether a task with manifest m can run on a host
	// with capabilities h. Nil means DefaultCompatible (compat.Decide).
	Compatible func(m *image.Manifest, h *compat.HostCaps) bool `json:"-"`
}

// DefaultConfig is the policy as the agent runs it unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Period:                10 * time.Second,
		Jitter:                0.5,
		High:                  1.15,
		Low:                   1.05,
		Ceiling:               1.10,
		Spread:                0.25,
		Levelling:             true,
		MinHotUtil:            0.25,
		Cooldown:              60 * time.Second,
		MinGain:               0.01,
		DowntimeLimit:         300 * time.Millisecond,
		MaxRounds:             30,
		DefaultBandwidth:      100e6,
		CostPerGiB:            0.005,
		CostPerDowntimeSecond: 0.05,
		MemoryReserve:         256 << 20,
		Backoff:               30 * time.Second,
		MaxBackoff:            10 * time.Minute,
	}
}

// ErrConfig is wrapped by every error of Config.Validate.
var ErrConfig = errors.New("rebalance: invalid config")

// Validate checks the config for values the policy cannot work with.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Period <= 0:
		return bad("period %v must be positive", c.Period)
	case c.Jitter < 0 || c.Jitter > 1:
		return bad("jitter %v must be in [0,1]", c.Jitter)
	case !(c.Low > 0) || !(c.Ceiling >= c.Low) || !(c.High > c.Ceiling):
		return bad("watermarks must satisfy 0 < low (%v) <= ceiling (%v) < high (%v)", c.Low, c.Ceiling, c.High)
	case c.Spread < 0 || c.Spread >= 1:
		return bad("spread %v must be in [0,1)", c.Spread)
	case c.MinHotUtil < 0:
		return bad("min_hot_util %v is negative", c.MinHotUtil)
	case c.Cooldown < 0 || c.Backoff < 0 || c.MaxBackoff < c.Backoff:
		return bad("cooldown %v, backoff %v, max_backoff %v: negative or max < base", c.Cooldown, c.Backoff, c.MaxBackoff)
	case c.MinGain < 0:
		return bad("min_gain %v is negative", c.MinGain)
	case c.DowntimeLimit <= 0:
		return bad("downtime_limit %v must be positive", c.DowntimeLimit)
	case c.MaxRounds < 1 || c.MaxRounds > 1000:
		return bad("max_rounds %d must be in [1,1000]", c.MaxRounds)
	case !(c.DefaultBandwidth > 0):
		return bad("default_bandwidth %v must be positive", c.DefaultBandwidth)
	case c.CostPerGiB < 0 || c.CostPerDowntimeSecond < 0:
		return bad("costs must not be negative")
	}
	return nil
}

// NextRun is the delay before a node's next policy run: Period shifted by
// Jitter. u is a uniform random number in [0,1) that the caller draws (the
// policy holds no random source).
func (c *Config) NextRun(u float64) time.Duration {
	f := 1 + c.Jitter*(2*u-1)
	return time.Duration(float64(c.Period) * f)
}
