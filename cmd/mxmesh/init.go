package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/homeserver"
)

func init() {
	register(command{name: "init", summary: "create a data directory: config, signing key, TLS certificate", run: runInit})
}

// initSteps add files of their own to a new data directory (the Noise
// static key, for one). Other files in this package append to it from
// init(). Each runs after the signing key and certificate are written and
// before the config file, and must refuse to overwrite.
var initSteps []func(dir string, cfg *homeserver.Config) error

func runInit(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("init", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", "", "data directory to create (required)")
	name := fset.String("server-name", "", "Matrix server name (required)")
	clientAddr := fset.String("client-addr", homeserver.DefaultClientAddr, "plain-HTTP client API address")
	fedAddr := fset.String("federation-addr", homeserver.DefaultFederationAddr, "HTTPS (federation and client API) address")
	coapAddr := fset.String("coap-addr", homeserver.DefaultCoAPAddr, "CoAP/Noise UDP address")
	open := fset.Bool("open-registration", false, "let anyone register an account")
	insecure := fset.Bool("federation-tls-insecure", false, "accept any TLS certificate from federation peers (tests only)")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mxmesh init --dir DIR --server-name NAME [--client-addr H:P] [--federation-addr H:P] [--coap-addr H:P] [--open-registration] [--federation-tls-insecure]")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *name == "" || fset.NArg() != 0 {
		fset.Usage()
		return 2
	}
	cfg := homeserver.DefaultConfig(*name)
	cfg.ClientAddr, cfg.FederationAddr, cfg.CoAPAddr = *clientAddr, *fedAddr, *coapAddr
	cfg.Registration.Open = *open
	cfg.FederationTLSInsecure = *insecure
	if err := initDir(*dir, cfg, time.Now()); err != nil {
		fmt.Fprintf(stderr, "mxmesh init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "initialised %s for server %s (config %s)\n", *dir, *name, filepath.Join(*dir, homeserver.ConfigFile))
	return 0
}

// initDir writes a new data directory: signing key, self-signed TLS
// certificate, whatever initSteps add, and the commented config file
// last. It refuses to overwrite any existing file.
func initDir(dir string, cfg *homeserver.Config, now time.Time) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.Dir = dir
	conf := filepath.Join(dir, homeserver.ConfigFile)
	for _, p := range []string{conf, cfg.Path(cfg.SigningKeyFile), cfg.Path(cfg.NoiseKeyFile), cfg.Path(cfg.TLSCert), cfg.Path(cfg.TLSKey), cfg.Path(cfg.Database)} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite an existing node", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := homeserver.GenerateSigningKey(clock.SystemRNG())
	if err != nil {
		return err
	}
	keyText, err := key.MarshalText()
	if err != nil {
		return err
	}
	if err := writeNew(cfg.Path(cfg.SigningKeyFile), keyText); err != nil {
		return err
	}
	certPEM, keyPEM, err := gateway.SelfSignedCert(cfg.ServerName, now)
	if err != nil {
		return err
	}
	if err := writeNew(cfg.Path(cfg.TLSKey), keyPEM); err != nil {
		return err
	}
	if err := writeNew(cfg.Path(cfg.TLSCert), certPEM); err != nil {
		return err
	}
	for _, step := range initSteps {
		if err := step(dir, cfg); err != nil {
			return err
		}
	}
	text, err := cfg.MarshalCommented()
	if err != nil {
		return err
	}
	return writeNew(conf, text)
}

// writeNew creates a file readable only by its owner, failing if it exists.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
