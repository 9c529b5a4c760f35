package precopy

import (
	"math"
	"time"
)

// ControllerConfig tunes the convergence controller. DefaultControllerConfig
// gives the values below.
type ControllerConfig struct {
	// DowntimeLimit: switch over once what remains can be sent in this
	// long at the measured bandwidth (QEMU's downtime-limit). 300 ms.
	DowntimeLimit time.Duration
	// SettleDowntime: once the rest fits in DowntimeLimit, pre-copy still
	// goes on while the last round at least halved what remains (the task
	// dirties memory far slower than the link drains it, so one more round
	// costs little time and cuts the downtime by as much), until the rest
	// fits in SettleDowntime. DowntimeLimit/20 (15 ms); a value at or above
	// DowntimeLimit turns it off (QEMU's rule alone).
	SettleDowntime time.Duration
	// MaxRounds caps the rounds after round 0. 30.
	MaxRounds int
	// MinImprovement and StallRounds: a round "shrinks" when what remains
	// is at least MinImprovement (10%) below the best so far; after
	// StallRounds (3) rounds in a row that do not, pre-copy stops (or, with
	// AutoConverge, throttles the task one step harder first).
	MinImprovement float64
	StallRounds    int
	// MaxTime caps the time pre-copy may take (0: no cap).
	MaxTime time.Duration
	// AutoConverge throttles the task when rounds stop shrinking: first
	// ThrottleInitial (20%) of its CPU time taken away, then ThrottleStep
	// (10%) more each time, up to ThrottleMax (99%), as QEMU's
	// cpu-throttle-initial/increment/max.
	AutoConverge    bool
	ThrottleInitial float64
	ThrottleStep    float64
	ThrottleMax     float64
}

// DefaultControllerConfig returns the defaults documented on ControllerConfig.
func DefaultControllerConfig() ControllerConfig {
	return ControllerConfig{
		DowntimeLimit:   300 * time.Millisecond,
		MaxRounds:       30,
		MinImprovement:  0.10,
		StallRounds:     3,
		ThrottleInitial: 0.20,
		ThrottleStep:    0.10,
		ThrottleMax:     0.99,
	}
}

// Observation is what the round engine measured, taken right after a
// round's dirty pages were collected and before they are sent.
type Observation struct {
	// Round is the round that would send RemainingBytes (>= 1).
	Round int
	// RemainingPages and RemainingBytes are what would have to be sent now
	// (the pages written during the previous round, new mappings whole).
	RemainingPages uint64
	RemainingBytes uint64
	// SentBytes is what the previous round sent (0: unknown), and
	// Bandwidth the rate it was sent at (bytes/s; 0 when unknown).
	SentBytes uint64
	Bandwidth float64
	// Elapsed is the time since pre-copy began.
	Elapsed time.Duration
}

// Action is what the controller tells the round engine to do.
type Action int

const (
	// Continue: send what remains in another round while the task runs.
	Continue Action = iota
	// SwitchOver: stop here; the caller freezes the task and sends the rest.
	SwitchOver
)

func (a Action) String() string {
	if a == SwitchOver {
		return "switch-over"
	}
	return "continue"
}

// Reason says why the controller decided as it did (stable strings, for
// reports and metrics).
type Reason string

const (
	ReasonShrinking     Reason = "shrinking"      // continue: rounds still shrink
	ReasonSettling      Reason = "settling"       // continue: the rest fits, but rounds still halve (SettleDowntime)
	ReasonThrottled     Reason = "throttled"      // continue: the task was throttled harder
	ReasonConverged     Reason = "converged"      // switch: the rest fits in the downtime limit
	ReasonRoundCap      Reason = "round-cap"      // switch: MaxRounds reached
	ReasonTimeCap       Reason = "time-cap"       // switch: MaxTime reached
	ReasonNotConverging Reason = "not-converging" // switch: rounds stopped shrinking
)

// Decision is the controller's answer to one Observation.
type Decision struct {
	Action Action
	Reason Reason
	// Converged tells whether the estimated downtime is within the limit.
	Converged bool
	// EstimatedDowntime is RemainingBytes at the measured bandwidth
	// (math.MaxInt64 when the bandwidth is unknown).
	EstimatedDowntime time.Duration
	// Throttle is the fraction of CPU time to take away from the task from
	// now on (0: none).
	Throttle float64
}

// Controller decides, round by round, whether pre-copy goes on. It is pure
// logic: it only sees Observations.
type Controller struct {
	cfg      ControllerConfig
	best     uint64
	stalled  int
	throttle float64
	started  bool
}

// NewController returns a controller; zero fields of cfg take the defaults.
func NewController(cfg ControllerConfig) *Controller {
	def := DefaultControllerConfig()
	if cfg.DowntimeLimit <= 0 {
		cfg.DowntimeLimit = def.DowntimeLimit
	}
	if cfg.SettleDowntime <= 0 {
		cfg.SettleDowntime = cfg.DowntimeLimit / 20
	}
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = def.MaxRounds
	}
	if cfg.MinImprovement <= 0 {
		cfg.MinImprovement = def.MinImprovement
	}
	if cfg.StallRounds <= 0 {
		cfg.StallRounds = def.StallRounds
	}
	if cfg.ThrottleInitial <= 0 {
		cfg.ThrottleInitial = def.ThrottleInitial
	}
	if cfg.ThrottleStep <= 0 {
		cfg.ThrottleStep = def.ThrottleStep
	}
	if cfg.ThrottleMax <= 0 || cfg.ThrottleMax >= 1 {
		cfg.ThrottleMax = def.ThrottleMax
	}
	return &Controller{cfg: cfg}
}

// Config returns the configuration in effect.
func (c *Controller) Config() ControllerConfig { return c.cfg }

// Throttle is the throttle currently asked for.
func (c *Controller) Throttle() float64 { return c.throttle }

// EstimateDowntime is how long sending bytes takes at bandwidth bytes/s.
func EstimateDowntime(bytes uint64, bandwidth float64) time.Duration {
	if bytes == 0 {
		return 0
	}
	if bandwidth <= 0 {
		return time.Duration(math.MaxInt64)
	}
	s := float64(bytes) / bandwidth
	if s >= float64(math.MaxInt64)/1e9 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * 1e9)
}

// Decide takes the observation of one round and says what to do.
func (c *Controller) Decide(o Observation) Decision {
	d := Decision{EstimatedDowntime: EstimateDowntime(o.RemainingBytes, o.Bandwidth)}
	d.Converged = o.RemainingBytes == 0 || (o.Bandwidth > 0 && d.EstimatedDowntime <= c.cfg.DowntimeLimit)
	switchOver := func(r Reason) Decision {
		d.Action, d.Reason, d.Throttle = SwitchOver, r, c.throttle
		return d
	}
	capped := o.Round >= c.cfg.MaxRounds || (c.cfg.MaxTime > 0 && o.Elapsed >= c.cfg.MaxTime)
	if d.Converged {
		halved := o.SentBytes > 0 && o.RemainingBytes <= o.SentBytes/2
		if !capped && halved && d.EstimatedDowntime > c.cfg.SettleDowntime {
			d.Action, d.Reason, d.Throttle = Continue, ReasonSettling, c.throttle
			return d
		}
		return switchOver(ReasonConverged)
	}
	if o.Round >= c.cfg.MaxRounds {
		return switchOver(ReasonRoundCap)
	}
	if c.cfg.MaxTime > 0 && o.Elapsed >= c.cfg.MaxTime {
		return switchOver(ReasonTimeCap)
	}
	d.Reason = ReasonShrinking
	switch {
	case !c.started:
		c.started, c.best = true, o.RemainingBytes
	case float64(o.RemainingBytes) <= float64(c.best)*(1-c.cfg.MinImprovement):
		c.best, c.stalled = o.RemainingBytes, 0
	default:
		c.stalled++
	}
	if c.stalled >= c.cfg.StallRounds {
		if !c.cfg.AutoConverge || c.throttle >= c.cfg.ThrottleMax {
			return switchOver(ReasonNotConverging)
		}
		if c.throttle == 0 {
			c.throttle = c.cfg.ThrottleInitial
		} else {
			// In hundredths, so that steps add up without float drift.
			c.throttle = min(math.Round((c.throttle+c.cfg.ThrottleStep)*100)/100, c.cfg.ThrottleMax)
		}
		// The new throttle level gets StallRounds rounds to show an
		// improvement over what remains now.
		c.stalled, c.best = 0, o.RemainingBytes
		d.Reason = ReasonThrottled
	}
	d.Action, d.Throttle = Continue, c.throttle
	return d
}
