package gateway

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

// CoAPFrontDoorListenConfig configures ListenCoAPFrontDoor.
type CoAPFrontDoorListenConfig struct {
	// Addr is the UDP address to listen on.
	Addr string
	// Plain serves CoAP without Noise; Addr must then be loopback.
	Plain bool
	// ServerName, Static and SigningKey are this server's Noise identity
	// (Plain: unused).
	ServerName string
	Static     noise.KeyPair
	SigningKey ed25519.PrivateKey
	// Peers are the pinned mesh peers (MeshPins).
	Peers           []noise.Peer[netip.AddrPort]
	TrustOnFirstUse bool
	AcceptClients   bool
	// Door configures the translation.
	Door   CoAPFrontDoorConfig
	CoAP   coap.Config
	Clock  clock.Clock
	Logger *slog.Logger
}

// ListenCoAPFrontDoor opens a UDP socket serving the Matrix API through a
// CoAPFrontDoor, under Noise unless cfg.Plain.
func ListenCoAPFrontDoor(cfg CoAPFrontDoorListenConfig) (*UDPServer, error) {
	if cfg.Door.Logger == nil {
		cfg.Door.Logger = cfg.Logger
	}
	door, err := NewCoAPFrontDoor(cfg.Door)
	if err != nil {
		return nil, err
	}
	node := CoAPNodeConfig{CoAP: cfg.CoAP, Fallback: door, Logger: cfg.Logger}
	if !cfg.Plain {
		node.Noise, err = noise.New(noise.Config[netip.AddrPort]{ServerName: cfg.ServerName, Static: cfg.Static,
			SigningKey: cfg.SigningKey, Peers: cfg.Peers, TrustOnFirstUse: cfg.TrustOnFirstUse,
			AcceptClients: cfg.AcceptClients, Random: clock.SystemRNG(), Logger: cfg.Logger,
			Link: cfg.CoAP.Link, ExpectsReply: coap.ExpectsReply})
		if err != nil {
			return nil, fmt.Errorf("gateway: coap front door: %w", err)
		}
	}
	return ListenCoAPUDP(UDPConfig{Addr: cfg.Addr, Node: node, Clock: cfg.Clock, Logger: cfg.Logger})
}

// MeshPins turns the config's pinned mesh peers into Noise peers,
// resolving their addresses.
func MeshPins(cfg *homeserver.Config) ([]noise.Peer[netip.AddrPort], error) {
	var pins []noise.Peer[netip.AddrPort]
	for _, p := range cfg.Mesh.Peers {
		tok, err := p.Token()
		if err != nil {
			return nil, err
		}
		ua, err := net.ResolveUDPAddr("udp", p.Addr)
		if err != nil {
			return nil, fmt.Errorf("mesh peer %q: resolve %s: %w", p.Name, p.Addr, err)
		}
		ap := ua.AddrPort()
		pins = append(pins, noise.Peer[netip.AddrPort]{Name: p.Name, NoiseKey: tok.NoiseKey, SigningKey: tok.SigningKey,
			Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), Mutual: p.Mutual})
	}
	return pins, nil
}
