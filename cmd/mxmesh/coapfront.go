package main

import (
	"fmt"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
)

func init() {
	frontDoors = append(frontDoors, startCoAPFrontDoor)
}

// startCoAPFrontDoor serves the Matrix API over CoAP: under Noise on
// coap_addr, and without it on mesh.plain_coap_addr (loopback only) when
// configured.
func startCoAPFrontDoor(env *serveEnv) (stop func(), err error) {
	cfg := env.Config
	if cfg.CoAPAddr == "" && cfg.Mesh.PlainCoAPAddr == "" {
		return func() {}, nil
	}
	door := gateway.CoAPFrontDoorConfig{Node: env.Node, Post: env.Loop.Post, Logger: env.Log}
	var servers []*gateway.UDPServer
	stop = func() {
		if env.Mesh != nil {
			env.Mesh.Attach(nil)
		}
		for _, s := range servers {
			s.Close()
		}
	}
	if cfg.CoAPAddr != "" {
		kp, err := loadNoiseKey(cfg) // serve created it if it was missing
		if err != nil {
			return nil, err
		}
		pins, err := gateway.MeshPins(cfg)
		if err != nil {
			return nil, err
		}
		link, err := cfg.Mesh.Link.Params()
		if err != nil {
			return nil, err
		}
		s, err := gateway.ListenCoAPFrontDoor(gateway.CoAPFrontDoorListenConfig{Addr: cfg.CoAPAddr,
			ServerName: cfg.ServerName, Static: kp, SigningKey: env.Key.Key, Peers: pins,
			TrustOnFirstUse: cfg.Mesh.TrustOnFirstUse, AcceptClients: cfg.Mesh.AcceptClients,
			Door: door, CoAP: coap.Config{Link: link, Logger: env.Log}, Clock: clock.Real(), Logger: env.Log})
		if err != nil {
			return nil, fmt.Errorf("coap front door: %w", err)
		}
		servers = append(servers, s)
		if env.Mesh != nil {
			// One socket: the front door and outbound mesh federation.
			env.Mesh.Attach(s.Go)
		}
		env.Log.Info("coap/noise listening", "addr", s.Addr(), "pins", len(pins), "bit_rate", link.BitRate, "frame_time", link.FrameTime)
	}
	if cfg.Mesh.PlainCoAPAddr != "" {
		s, err := gateway.ListenCoAPFrontDoor(gateway.CoAPFrontDoorListenConfig{Addr: cfg.Mesh.PlainCoAPAddr,
			Plain: true, Door: door, Clock: clock.Real(), Logger: env.Log})
		if err != nil {
			stop()
			return nil, fmt.Errorf("plain coap front door: %w", err)
		}
		servers = append(servers, s)
		env.Log.Warn("plain coap (no noise) listening, for debugging", "addr", s.Addr())
	}
	return stop, nil
}
