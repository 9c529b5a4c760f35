package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/migrated/migrated/cluster"
)

// DefaultControl is the control socket when neither --control nor
// MIGRATED_CONTROL says otherwise.
const DefaultControl = "/run/migrated/migrated.sock"

// ControlEnv names the environment variable that overrides DefaultControl.
const ControlEnv = "MIGRATED_CONTROL"

// ControlSocket is the control socket a CLI or agent uses by default:
// $MIGRATED_CONTROL, else DefaultControl.
func ControlSocket() string {
	if s := os.Getenv(ControlEnv); s != "" {
		return s
	}
	return DefaultControl
}

// Options configure an agent. The names are those of the `migrated agent`
// flags and of the keys of its --config file.
type Options struct {
	// Name of this node in the cluster (default: the host name).
	Name string
	// Bind is the gossip address "IP[:PORT]" (default port 7946). The QUIC
	// transport listens on the same IP.
	Bind string
	// Advertise, if set, is the "IP[:PORT]" peers should use.
	Advertise string
	// Join lists peers "IP[:PORT]" to join at start-up.
	Join []string
	// JoinTimeout bounds the retries of Join before the agent gives up.
	JoinTimeout time.Duration
	// SecretFile holds the cluster secret (`migrated keygen`).
	SecretFile string
	// Insecure runs without a secret: unencrypted gossip, for a single
	// machine only.
	Insecure bool
	// Control is the unix socket of the control API.
	Control string
	// Metrics, if set, is the "IP:PORT" of the Prometheus /metrics endpoint.
	Metrics string
	// QUICPort is the UDP port of the QUIC transport on the bind IP
	// (0: the gossip port + 1).
	QUICPort int
	// Gossip is the memberlist timing profile: "lan" or "local".
	Gossip string
	// Refresh is the interval of node metadata refreshes.
	Refresh time.Duration
	// CapsOverride names a JSON file whose keys (those of compat.HostCaps)
	// replace probed values in what this agent advertises. For tests: it
	// lets one host pretend to lack a feature.
	CapsOverride string
}

// DefaultOptions are the flag defaults.
func DefaultOptions() Options {
	host, _ := os.Hostname()
	return Options{
		Name:        host,
		JoinTimeout: 10 * time.Second,
		Control:     ControlSocket(),
		Gossip:      cluster.ProfileLAN,
		Refresh:     5 * time.Second,
	}
}

// ErrOptions wraps every invalid-option error.
var ErrOptions = errors.New("invalid agent options")

// addrs parses Bind and Advertise and derives the QUIC address.
func (o *Options) addrs() (bind, advertise, quic netip.AddrPort, err error) {
	if o.Bind == "" {
		return bind, advertise, quic, fmt.Errorf("%w: --bind IP[:PORT] is required", ErrOptions)
	}
	if bind, err = cluster.ParseHostPort(o.Bind, cluster.DefaultPort); err != nil {
		return bind, advertise, quic, fmt.Errorf("%w: --bind: %v", ErrOptions, err)
	}
	if o.Advertise != "" {
		if advertise, err = cluster.ParseHostPort(o.Advertise, bind.Port()); err != nil {
			return bind, advertise, quic, fmt.Errorf("%w: --advertise: %v", ErrOptions, err)
		}
	}
	port := o.QUICPort
	if port == 0 {
		if bind.Port() == 0 || bind.Port() == 65535 {
			return bind, advertise, quic, fmt.Errorf("%w: --quic-port is required when the gossip port is %d", ErrOptions, bind.Port())
		}
		port = int(bind.Port()) + 1
	}
	if port < 1 || port > 65535 {
		return bind, advertise, quic, fmt.Errorf("%w: --quic-port %d", ErrOptions, port)
	}
	ip := bind.Addr()
	if advertise.IsValid() {
		ip = advertise.Addr()
	}
	return bind, advertise, netip.AddrPortFrom(ip, uint16(port)), nil
}
