package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

func init() {
	register(command{name: "serve", summary: "run a node (initialising --dir on first run)", run: runServe})
}

// defaultDir is the data directory `mxmesh serve` uses without --dir.
const defaultDir = "./mxmesh-data"

// defaultServerName is the server name a data directory gets when
// `mxmesh serve` initialises it on first run: the defaults listen on
// loopback only, so the node is only reachable as localhost anyway.
const defaultServerName = "localhost"

// shutdownGrace bounds how long in-flight requests may take to finish.
const shutdownGrace = 10 * time.Second

// serveEnv is a running node as front doors see it.
type serveEnv struct {
	Config *homeserver.Config
	Node   *homeserver.Node
	Loop   *homeserver.Loop
	Key    *homeserver.SigningKey
	Log    *slog.Logger
	// Mesh carries federation to pinned mesh peers; the CoAP/Noise front
	// door attaches its socket to it.
	Mesh *gateway.MeshRemote
}

// frontDoors start additional listeners (the CoAP/Noise front door, for
// one) once the node runs; other files in this package append to it from
// init(). stop is called at shutdown, before the node stops.
var frontDoors []func(env *serveEnv) (stop func(), err error)

func runServe(args []string, _ io.Reader, _, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", defaultDir, "data directory (created with server name "+defaultServerName+" if it holds no config)")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if fset.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: mxmesh serve [--dir DIR]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *dir, stderr, nil); err != nil {
		fmt.Fprintf(stderr, "mxmesh serve: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the node in dir until ctx ends. ready, if set, is called with
// the bound HTTP addresses once the node accepts requests.
func serve(ctx context.Context, dir string, logOut io.Writer, ready func(addrs []net.Addr)) error {
	if _, err := os.Stat(filepath.Join(dir, homeserver.ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		if err := initDir(dir, homeserver.DefaultConfig(defaultServerName), time.Now()); err != nil {
			return fmt.Errorf("first-run initialisation: %w", err)
		}
		fmt.Fprintf(logOut, "mxmesh: initialised new data directory %s (server name %s)\n", dir, defaultServerName)
	}
	cfg, err := homeserver.LoadConfig(dir)
	if err != nil {
		return err
	}
	log := newLogger(logOut, cfg.LogLevel)
	release, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer release()
	keyText, err := os.ReadFile(cfg.Path(cfg.SigningKeyFile))
	if err != nil {
		return fmt.Errorf("read signing key: %w", err)
	}
	key, err := homeserver.ParseSigningKey(keyText)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Path(cfg.SigningKeyFile), err)
	}
	st, err := store.Open(cfg.Path(cfg.Database))
	if err != nil {
		return err
	}
	defer st.Close()

	loop := homeserver.NewLoop()
	// Outbound federation: HTTPS with discovery and X-Matrix signing; the
	// answers come back into the loop. Non-public addresses are refused
	// unless configured (federation.allow_private_addresses, allowed_ranges).
	allowedRanges, err := cfg.Federation.Prefixes()
	if err != nil {
		return err
	}
	fedClient, err := gateway.NewFederationClient(gateway.FederationClientConfig{
		ServerName: cfg.ServerName, KeyID: key.ID, Key: key.Key,
		InsecureSkipVerify: cfg.FederationTLSInsecure, Logger: log,
		AllowPrivateAddresses: cfg.Federation.AllowPrivateAddresses, AllowedRanges: allowedRanges,
	})
	if err != nil {
		return err
	}
	remote := gateway.NewFederationRemote(fedClient, loop, log)
	defer remote.Close()
	// Pinned mesh peers are reached over CoAP/Noise instead, through the
	// CoAP listener's socket once it is up (coapfront.go attaches it).
	var meshPeers []string
	for _, p := range cfg.Mesh.Peers {
		meshPeers = append(meshPeers, p.Name)
	}
	mesh, err := gateway.NewMeshRemote(gateway.MeshRemoteConfig{Peers: meshPeers, Post: loop.Post, Logger: log})
	if err != nil {
		return err
	}
	chooser, err := gateway.NewRemoteChooser(mesh, remote)
	if err != nil {
		return err
	}
	// The Noise public key is published, bound to the signing key, in our
	// server key response (DESIGN.md "Identity and discovery").
	// A data directory from before the Noise key existed gets one now.
	var noisePub []byte
	if kp, created, err := loadOrCreateNoiseKey(cfg); err == nil {
		noisePub = kp.Public
		if created {
			log.Info("created noise key", "file", cfg.Path(cfg.NoiseKeyFile))
		}
	} else {
		log.Info("no Noise key to publish in the server key response", "err", err)
	}
	// Push notifications go to the push gateways of users' pushers.
	pusher, err := gateway.NewPushClient(gateway.PushClientConfig{Post: loop.Post, Logger: log,
		AllowPrivate: cfg.Push.AllowPrivateAddresses})
	if err != nil {
		return err
	}
	defer pusher.Close()
	node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key,
		Clock: clock.Real(), RNG: clock.SystemRNG(), Logger: log, Loop: loop, Remote: chooser, NoiseKey: noisePub,
		Pusher: pusher})
	if err != nil {
		return err
	}
	// PDUs to mesh peers are packed against the room state both share.
	mesh.SetRoomContexts(node.MeshRoomContext)
	httpSrv := gateway.NewHTTPServer(node, log)
	var addrs []net.Addr
	if cfg.ClientAddr != "" {
		a, err := httpSrv.ListenPlain(cfg.ClientAddr)
		if err != nil {
			httpSrv.Shutdown(context.Background())
			return err
		}
		addrs = append(addrs, a)
	}
	if cfg.FederationAddr != "" {
		a, err := httpSrv.ListenTLS(cfg.FederationAddr, cfg.Path(cfg.TLSCert), cfg.Path(cfg.TLSKey))
		if err != nil {
			httpSrv.Shutdown(context.Background())
			return err
		}
		addrs = append(addrs, a)
	}
	loopDone := make(chan struct{})
	go func() { loop.Run(); close(loopDone) }()
	env := &serveEnv{Config: cfg, Node: node, Loop: loop, Key: key, Log: log, Mesh: mesh}
	var stops []func()
	var runErr error
	for _, start := range frontDoors {
		stopFD, err := start(env)
		if err != nil {
			runErr = err
			break
		}
		stops = append(stops, stopFD)
	}
	if runErr == nil {
		httpSrv.Serve()
		log.Info("node running", "server_name", cfg.ServerName, "dir", dir)
		if ready != nil {
			ready(addrs)
		}
		select {
		case <-ctx.Done():
			log.Info("shutting down")
		case runErr = <-httpSrv.Errors():
		}
	}

	// Shutdown: stop accepting, release long polls by stopping the node,
	// let in-flight requests finish, then drain the loop so every write
	// posted before it closed reaches the database.
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Shutdown(shutCtx) }()
	_ = loop.Post(node.Stop)
	if err := <-httpDone; err != nil {
		log.Warn("http shutdown", "err", err)
	}
	<-loop.Close()
	<-loopDone
	log.Info("stopped")
	return runErr
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
