package sim

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
	"github.com/mxmesh/mxmesh/noise"
)

// server is one homeserver: a real node with its SQLite store, its CoAP
// front door for clients, and federation carried over the simulated links.
type server struct {
	s        *Sim
	name     string
	node     *homeserver.Node
	store    *store.Store
	door     *gateway.CoAPFrontDoor
	ep       *endpoint
	noiseKey []byte
}

func (s *Sim) newServer(name, dir string, key *homeserver.SigningKey, kp noise.KeyPair, peers []noise.Peer[netip.AddrPort], master *rand.ChaCha8) (*server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	cfg := homeserver.DefaultConfig(name)
	cfg.Dir = dir
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4 // users are created by the simulator; the cost is wall time only
	st, err := store.Open(filepath.Join(dir, "mxmesh.db"))
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	sv := &server{s: s, name: name, store: st, ep: s.eps[s.byName[name]], noiseKey: kp.Public}
	// Federation rides the mesh transport: each request a CoAP request over
	// the Noise session with the destination, across the simulated links.
	// Completions and sends run as events on the queue, never inside Do.
	var names []string
	pinned := map[string]ed25519.PublicKey{}
	for _, p := range peers {
		names = append(names, p.Name)
		pinned[p.Name] = p.SigningKey
	}
	remote, err := gateway.NewMeshRemote(gateway.MeshRemoteConfig{Peers: names, Logger: s.log,
		Post: func(f func()) error { s.after(0, f); return nil },
		Run: func(f func(n *gateway.CoAPNode, now time.Time)) error {
			s.after(0, func() {
				f(sv.ep.node, s.clk.Now())
				sv.ep.flush()
			})
			return nil
		}})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	sv.node, err = homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key, Clock: s.clk,
		RNG: clock.SeededRNG(master.Uint64()), Logger: s.log.With("server", name), Remote: remote, NoiseKey: kp.Public,
		PinnedSigningKeys: pinned})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	if sv.door, err = gateway.NewCoAPFrontDoor(gateway.CoAPFrontDoorConfig{Node: sv.node, Logger: s.log}); err != nil {
		st.Close()
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	lp, ackDelay := s.linkParams(sv.ep.idx)
	ncfg := noise.Config[netip.AddrPort]{ServerName: name, Static: kp, SigningKey: key.Key, Peers: peers,
		AcceptClients: true, Random: clock.SeededRNG(master.Uint64()), Logger: s.log, Link: lp, ExpectsReply: coap.ExpectsReply}
	nz, err := noise.New(ncfg)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	if sv.ep.node, err = gateway.NewCoAPNode(gateway.CoAPNodeConfig{Noise: nz, Fallback: sv.door, Logger: s.log,
		CoAP: coap.Config{Link: lp, AckDelay: ackDelay, PeerLink: s.peerLink(sv.ep.idx), RNG: clock.SeededRNG(master.Uint64()), Logger: s.log}}); err != nil {
		st.Close()
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	return sv, nil
}

func (sv *server) close() error {
	sv.node.Stop()
	if err := sv.store.Close(); err != nil {
		return fmt.Errorf("server %s: close store: %w", sv.name, err)
	}
	return nil
}
