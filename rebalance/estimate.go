package rebalance

import (
	"math"
	"time"
)

// MoveEstimate is what a pre-copy move of a task is expected to cost.
type MoveEstimate struct {
	// Bytes sent in all rounds, the final stop-and-copy included.
	Bytes float64 `json:"bytes"`
	// Duration of the whole move, from round 0 to the switch-over.
	Duration time.Duration `json:"duration"`
	// Downtime is the expected stop-and-copy time (the task is frozen).
	Downtime time.Duration `json:"downtime"`
	// Rounds of pre-copy before the final one.
	Rounds int `json:"rounds"`
	// Converges is false when the remaining dirty memory never fits in
	// bandwidth x downtime limit within maxRounds (or stops shrinking).
	Converges bool `json:"converges"`
}

// EstimateMove models the pre-copy loop the way the move path runs it
// (DESIGN.md, Pre-copy): round 0 sends rss bytes; every next round sends what
// was dirtied while the previous one was sent (at most rss); the loop
// switches over as soon as the remainder fits in bandwidth x downtimeLimit,
// gives up when a round does not shrink, and after maxRounds.
// bandwidth is in bytes per second, dirtyRate in bytes per second.
func EstimateMove(rss uint64, dirtyRate, bandwidth float64, downtimeLimit time.Duration, maxRounds int) MoveEstimate {
	var e MoveEstimate
	if !(bandwidth > 0) {
		return e
	}
	if dirtyRate < 0 || math.IsNaN(dirtyRate) {
		dirtyRate = 0
	}
	total := float64(rss)
	budget := bandwidth * downtimeLimit.Seconds()
	remaining := total
	seconds := 0.0
	for round := 0; round <= maxRounds; round++ {
		if remaining <= budget {
			e.Bytes += remaining
			down := remaining / bandwidth
			seconds += down
			e.Downtime = secondsToDuration(down)
			e.Duration = secondsToDuration(seconds)
			e.Rounds = round
			e.Converges = true
			return e
		}
		if round == maxRounds {
			break
		}
		dt := remaining / bandwidth
		e.Bytes += remaining
		seconds += dt
		next := math.Min(total, dirtyRate*dt)
		if round > 0 && next >= remaining {
			break // not shrinking: would never converge
		}
		remaining = next
	}
	e.Rounds = maxRounds
	e.Duration = secondsToDuration(seconds)
	return e
}

func secondsToDuration(s float64) time.Duration {
	if s > float64(math.MaxInt64)/1e9 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * 1e9)
}
