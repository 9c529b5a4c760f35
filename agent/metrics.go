package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/migrated/migrated/cluster"
)

type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "migrated_control_requests_total",
			Help: "Control API requests by route pattern and HTTP status.",
		}, []string{"pattern", "status"}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), m.requests)
	return m
}

func (m *metrics) register(a *Agent) {
	for _, s := range []cluster.State{cluster.StateAlive, cluster.StateLeft, cluster.StateFailed} {
		s := s
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "migrated_cluster_members",
			Help:        "Cluster members this agent knows of, by state.",
			ConstLabels: prometheus.Labels{"state": string(s)},
		}, func() float64 {
			n := 0
			for _, mem := range a.Members() {
				if mem.State == s {
					n++
				}
			}
			return float64(n)
		}))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "migrated_managed_tasks",
		Help: "Tasks this agent manages.",
	}, func() float64 { return float64(a.ManagedTasks()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "migrated_build_info",
		Help:        "Version of the agent.",
		ConstLabels: prometheus.Labels{"version": Version()},
	}, func() float64 { return 1 }))
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return mux
}

// Metrics is where other parts of the agent register their collectors.
func (a *Agent) Metrics() prometheus.Registerer { return a.metrics.reg }
