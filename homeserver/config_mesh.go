package homeserver

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/noise"
)

// MeshConfig is the "mesh" section of the config: who may talk to the
// CoAP/Noise listener (Config.CoAPAddr) and how (DESIGN.md "Identity and
// discovery").
type MeshConfig struct {
	// TrustOnFirstUse accepts mesh servers that are not pinned, pinning the
	// keys they present on first contact. Off by default: pin peers with
	// `mxmesh peer add`.
	//
	// A key learned this way is held in memory until the node restarts:
	// meanwhile the name is refused with any other key, and the gateway
	// logs the learned keys at Info. It is deliberately not written into
	// Peers, for three reasons. A pin in Peers makes the peer a pinned
	// server whose Noise session stands in for X-Matrix on federation
	// routes (noise.Endpoint.Pinned), which a key learned on first use
	// never grants: saving it would turn any server that once reached us
	// into an authenticated federation peer at the next start, a decision
	// left to the operator. The learned key comes without the binding
	// signature a key token carries, so it cannot be checked again the
	// way Peers entries are. And writing the operator's file whenever an
	// unknown name completes a handshake would let the network grow it
	// (and wear the flash of small boards). To keep a learned peer, pin
	// the token its `mxmesh peer show` prints with `mxmesh peer add`.
	TrustOnFirstUse bool `yaml:"trust_on_first_use"`
	// AcceptClients lets low-bandwidth clients (which pinned this server's
	// key token) open Noise sessions; they still need an access token for
	// every authenticated request.
	AcceptClients bool `yaml:"accept_clients"`
	// PlainCoAPAddr, when set, is a second CoAP listener without Noise, for
	// debugging with standard CoAP tools. It must be a loopback address.
	PlainCoAPAddr string `yaml:"plain_coap_addr"`
	// Peers are the pinned mesh peers.
	Peers []MeshPeer `yaml:"peers"`
	// Link describes the link the CoAP/Noise listener sends on; the CoAP
	// retransmission timers and the Noise handshake, keepalive and
	// no-reply timers are derived from it. Empty: a fast link.
	Link MeshLink `yaml:"link"`
}

// MeshLink is the "mesh.link" section: the slowest link towards the
// listener's peers (coap.LinkParams).
type MeshLink struct {
	// BitRate is the payload rate in bit/s; 0 means fast.
	BitRate int `yaml:"bit_rate"`
	// FrameTime is the fixed airtime of one frame whatever its size
	// (preamble, header, turnaround), a Go duration such as "250ms".
	FrameTime string `yaml:"frame_time"`
	// Latency is the one-way delay, a Go duration.
	Latency string `yaml:"latency"`
	// MTU is the largest datagram in bytes; 0 means 1152.
	MTU int `yaml:"mtu"`
}

// Params returns the link as coap.LinkParams, checked the way the CoAP
// layer derives its timers from it.
func (l MeshLink) Params() (coap.LinkParams, error) {
	p := coap.LinkParams{BitRate: l.BitRate, MTU: l.MTU}
	for _, f := range []struct {
		name string
		s    string
		d    *time.Duration
	}{{"frame_time", l.FrameTime, &p.FrameTime}, {"latency", l.Latency, &p.Latency}} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil {
			return coap.LinkParams{}, fmt.Errorf("mesh.link.%s: %w", f.name, err)
		}
		*f.d = d
	}
	if _, err := coap.Derive(p, 0, 0); err != nil {
		return coap.LinkParams{}, fmt.Errorf("mesh.link: %w", err)
	}
	return p, nil
}

// MeshPeer pins one mesh server.
type MeshPeer struct {
	// Name is the peer's Matrix server name.
	Name string `yaml:"name"`
	// Addr is its CoAP/Noise UDP address, host:port.
	Addr string `yaml:"addr"`
	// Key is its key token ("mxk1:…", `mxmesh peer show`): Noise key,
	// signing key and the signature binding them to Name.
	Key string `yaml:"key"`
	// Mutual says the peer pinned this server too (Noise_KK).
	Mutual bool `yaml:"mutual"`
}

// Token parses and verifies the peer's key token.
func (p MeshPeer) Token() (noise.KeyToken, error) {
	t, err := noise.ParseKeyToken(p.Key)
	if err != nil {
		return noise.KeyToken{}, fmt.Errorf("mesh peer %q: %w", p.Name, err)
	}
	if err := t.Verify(p.Name); err != nil {
		return noise.KeyToken{}, fmt.Errorf("mesh peer %q: %w", p.Name, err)
	}
	return t, nil
}

// Validate checks one pin.
func (p MeshPeer) Validate() error {
	if err := ValidateServerName(p.Name); err != nil {
		return fmt.Errorf("mesh peer: %w", err)
	}
	if err := validateHostPort(p.Addr); err != nil {
		return fmt.Errorf("mesh peer %q: addr: %w", p.Name, err)
	}
	_, err := p.Token()
	return err
}

func (m *MeshConfig) validate() []error {
	var errs []error
	if _, err := m.Link.Params(); err != nil {
		errs = append(errs, err)
	}
	if m.PlainCoAPAddr != "" {
		ap, err := netip.ParseAddrPort(m.PlainCoAPAddr)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			errs = append(errs, fmt.Errorf("mesh.plain_coap_addr %q: must be a loopback ip:port (plain CoAP is unauthenticated)", m.PlainCoAPAddr))
		}
	}
	names := map[string]bool{}
	keys := map[string]string{}
	for _, p := range m.Peers {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("mesh peer %q: pinned twice", p.Name))
		}
		names[p.Name] = true
		t, _ := p.Token()
		if other, dup := keys[string(t.NoiseKey)]; dup {
			errs = append(errs, fmt.Errorf("mesh peer %q: same noise key as %q", p.Name, other))
		}
		keys[string(t.NoiseKey)] = p.Name
	}
	return errs
}

func validateHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: bad port", a)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", a)
	}
	return nil
}
