package precopy

import (
	"math"
	"testing"
	"time"
)

func TestControllerDecisions(t *testing.T) {
	const MB = 1_000_000
	type step struct {
		remaining uint64
		sent      uint64 // what the round before sent (0: unknown)
		bw        float64
		elapsed   time.Duration
		action    Action
		reason    Reason
		throttle  float64
	}
	tests := []struct {
		name  string
		cfg   ControllerConfig
		steps []step
	}{
		{"fits in the downtime limit at once", ControllerConfig{}, []step{
			{remaining: 30 * MB, bw: 100 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"nothing remains", ControllerConfig{}, []step{
			{remaining: 0, bw: 0, action: SwitchOver, reason: ReasonConverged},
		}},
		{"unknown bandwidth never converges", ControllerConfig{}, []step{
			{remaining: 1, bw: 0, action: Continue, reason: ReasonShrinking},
		}},
		{"shrinking rounds then converged", ControllerConfig{}, []step{
			{remaining: 400 * MB, bw: 100 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 200 * MB, bw: 100 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 100 * MB, bw: 100 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 31 * MB, bw: 100 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 30 * MB, bw: 100 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"downtime limit scales the threshold", ControllerConfig{DowntimeLimit: 50 * time.Millisecond}, []step{
			{remaining: 30 * MB, bw: 100 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 5 * MB, bw: 100 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"three rounds without 10% improvement stop", ControllerConfig{}, []step{
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 95 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 91 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 99 * MB, bw: 10 * MB, action: SwitchOver, reason: ReasonNotConverging},
		}},
		{"an improvement resets the stall count", ControllerConfig{}, []step{
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 95 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 89 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 88 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 88 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 88 * MB, bw: 10 * MB, action: SwitchOver, reason: ReasonNotConverging},
		}},
		{"converged, but rounds still halve: settle", ControllerConfig{}, []step{
			{remaining: 24 * MB, sent: 1000 * MB, bw: 180 * MB, action: Continue, reason: ReasonSettling},
			{remaining: 1 * MB, sent: 24 * MB, bw: 180 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"converged and not halving: switch", ControllerConfig{}, []step{
			{remaining: 24 * MB, sent: 40 * MB, bw: 180 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"settling ends at the round cap", ControllerConfig{MaxRounds: 1}, []step{
			{remaining: 24 * MB, sent: 1000 * MB, bw: 180 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"settling off", ControllerConfig{SettleDowntime: time.Second}, []step{
			{remaining: 24 * MB, sent: 1000 * MB, bw: 180 * MB, action: SwitchOver, reason: ReasonConverged},
		}},
		{"round cap", ControllerConfig{MaxRounds: 2}, []step{
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 50 * MB, bw: 10 * MB, action: SwitchOver, reason: ReasonRoundCap},
		}},
		{"time cap", ControllerConfig{MaxTime: time.Second}, []step{
			{remaining: 100 * MB, bw: 10 * MB, elapsed: 500 * time.Millisecond, action: Continue, reason: ReasonShrinking},
			{remaining: 50 * MB, bw: 10 * MB, elapsed: time.Second, action: SwitchOver, reason: ReasonTimeCap},
		}},
		{"auto-converge throttles step by step, then gives up", ControllerConfig{AutoConverge: true, StallRounds: 1, ThrottleMax: 0.4}, []step{
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonThrottled, throttle: 0.2},
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonThrottled, throttle: 0.3},
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonThrottled, throttle: 0.4},
			{remaining: 100 * MB, bw: 10 * MB, action: SwitchOver, reason: ReasonNotConverging, throttle: 0.4},
		}},
		{"auto-converge: throttling that helps keeps its level", ControllerConfig{AutoConverge: true, StallRounds: 1}, []step{
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking},
			{remaining: 100 * MB, bw: 10 * MB, action: Continue, reason: ReasonThrottled, throttle: 0.2},
			{remaining: 50 * MB, bw: 10 * MB, action: Continue, reason: ReasonShrinking, throttle: 0.2},
			{remaining: 2 * MB, bw: 10 * MB, action: SwitchOver, reason: ReasonConverged, throttle: 0.2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewController(tt.cfg)
			for i, st := range tt.steps {
				d := c.Decide(Observation{Round: i + 1, RemainingBytes: st.remaining, SentBytes: st.sent, Bandwidth: st.bw, Elapsed: st.elapsed})
				if d.Action != st.action || d.Reason != st.reason || math.Abs(d.Throttle-st.throttle) > 1e-9 {
					t.Fatalf("round %d (remaining %d, bw %.0f): got %s/%s throttle %.2f, want %s/%s throttle %.2f",
						i+1, st.remaining, st.bw, d.Action, d.Reason, d.Throttle, st.action, st.reason, st.throttle)
				}
				if d.Converged != (st.reason == ReasonConverged || st.reason == ReasonSettling) {
					t.Fatalf("round %d: Converged %v with reason %s", i+1, d.Converged, d.Reason)
				}
			}
		})
	}
}

func TestEstimateDowntime(t *testing.T) {
	tests := []struct {
		bytes uint64
		bw    float64
		want  time.Duration
	}{
		{0, 0, 0},
		{100e6, 1e9, 100 * time.Millisecond},
		{1, 0, time.Duration(math.MaxInt64)},
		{math.MaxUint64, 1e-9, time.Duration(math.MaxInt64)},
	}
	for _, tt := range tests {
		if got := EstimateDowntime(tt.bytes, tt.bw); got != tt.want {
			t.Errorf("EstimateDowntime(%d, %g) = %v, want %v", tt.bytes, tt.bw, got, tt.want)
		}
	}
}
