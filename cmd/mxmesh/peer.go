package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

func init() {
	register(command{name: "peer", summary: "mesh pins: peer show --dir DIR | peer add --dir DIR NAME ADDR KEY [--mutual] [--replace]", run: runPeer})
	initSteps = append(initSteps, func(dir string, cfg *homeserver.Config) error {
		_, err := createNoiseKey(cfg)
		return err
	})
}

const peerUsage = `usage: mxmesh peer show [--dir DIR]
       mxmesh peer add [--dir DIR] NAME ADDR KEY [--mutual] [--replace]

show prints this node's server name, CoAP address, Noise public key and its
key token (KEY). On another node, "peer add" pins this one with that token:
NAME is the server name, ADDR its CoAP/Noise UDP address (host:port).
--mutual says the peer pinned us too (smaller Noise_KK handshakes);
--replace overwrites an existing pin of NAME. The pin is written into
mesh.peers of the config file, whose other lines (comments included) are
left as they are. A running node picks up new pins when restarted.`

func runPeer(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "show" && args[0] != "add") {
		fmt.Fprintln(stderr, peerUsage)
		return 2
	}
	fset := flag.NewFlagSet("peer "+args[0], flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", defaultDir, "data directory")
	mutual := fset.Bool("mutual", false, "add: the peer pinned this node too")
	replace := fset.Bool("replace", false, "add: overwrite an existing pin of NAME")
	pos, err := parseInterspersed(fset, args[1:])
	if err != nil {
		return 2
	}
	switch {
	case args[0] == "show" && len(pos) == 0:
		err = peerShow(*dir, stdout)
	case args[0] == "add" && len(pos) == 3:
		err = peerAdd(*dir, homeserver.MeshPeer{Name: pos[0], Addr: pos[1], Key: pos[2], Mutual: *mutual}, *replace, stdout)
	default:
		fmt.Fprintln(stderr, peerUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "mxmesh peer %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// peerShow prints what another node needs to pin this one.
func peerShow(dir string, stdout io.Writer) error {
	cfg, err := homeserver.LoadConfig(dir)
	if err != nil {
		return err
	}
	key, err := loadSigningKey(cfg)
	if err != nil {
		return err
	}
	kp, err := loadNoiseKey(cfg)
	if err != nil {
		return err
	}
	tok := noise.NewKeyToken(cfg.ServerName, kp.Public, key.Key)
	addr := cfg.CoAPAddr
	if addr == "" {
		addr = "(disabled)"
	}
	fmt.Fprintf(stdout, "server_name: %s\n", cfg.ServerName)
	fmt.Fprintf(stdout, "coap_addr:   udp %s\n", addr)
	fmt.Fprintf(stdout, "noise_key:   %s\n", base64.RawStdEncoding.EncodeToString(kp.Public))
	fmt.Fprintf(stdout, "signing_key: %s %s\n", key.ID, base64.RawStdEncoding.EncodeToString(key.Public()))
	fmt.Fprintf(stdout, "key:         %s\n", tok)
	if cfg.CoAPAddr != "" {
		fmt.Fprintf(stdout, "\npin this node on a peer with:\n  mxmesh peer add --dir DIR %s %s %s\n", cfg.ServerName, cfg.CoAPAddr, tok)
	}
	return nil
}

// peerAdd validates p and pins it in the config file, editing the file in
// place (homeserver.PinMeshPeer): the operator's comments and layout stay.
func peerAdd(dir string, p homeserver.MeshPeer, replace bool, stdout io.Writer) error {
	cfg, err := homeserver.LoadConfig(dir)
	if err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Name == cfg.ServerName {
		return fmt.Errorf("%s is this node's own name", p.Name)
	}
	tok, _ := p.Token()
	if own, err := loadNoiseKey(cfg); err == nil && string(own.Public) == string(tok.NoiseKey) {
		return fmt.Errorf("that key is this node's own noise key")
	}
	replaced, err := homeserver.PinMeshPeer(dir, p, replace)
	if errors.Is(err, homeserver.ErrAlreadyPinned) {
		return fmt.Errorf("%w; use --replace to change the pin", err)
	}
	if err != nil {
		return err
	}
	verb := "pinned"
	if replaced {
		verb = "re-pinned"
	}
	fmt.Fprintf(stdout, "%s %s at %s (restart a running node to use it)\n", verb, p.Name, p.Addr)
	return nil
}

// replaceFile writes data to path atomically: a new file beside it, then a
// rename, so a crash leaves the old or the new file, never half of one.
func replaceFile(path string, data []byte) error {
	tmp := path + ".new"
	_ = os.Remove(tmp)
	if err := writeNew(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

func loadSigningKey(cfg *homeserver.Config) (*homeserver.SigningKey, error) {
	text, err := os.ReadFile(cfg.Path(cfg.SigningKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key, err := homeserver.ParseSigningKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path(cfg.SigningKeyFile), err)
	}
	return key, nil
}

// loadNoiseKey reads the Noise static key file.
func loadNoiseKey(cfg *homeserver.Config) (noise.KeyPair, error) {
	text, err := os.ReadFile(cfg.Path(cfg.NoiseKeyFile))
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("read noise key: %w", err)
	}
	kp, err := noise.ParseKeyPair(text)
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("%s: %w", cfg.Path(cfg.NoiseKeyFile), err)
	}
	return kp, nil
}

// createNoiseKey writes a new Noise static key file, refusing to
// overwrite one.
func createNoiseKey(cfg *homeserver.Config) (noise.KeyPair, error) {
	kp, err := noise.GenerateKeyPair(clock.SystemRNG())
	if err != nil {
		return noise.KeyPair{}, err
	}
	text, err := kp.MarshalText()
	if err != nil {
		return noise.KeyPair{}, err
	}
	if err := writeNew(cfg.Path(cfg.NoiseKeyFile), text); err != nil {
		return noise.KeyPair{}, err
	}
	return kp, nil
}

// loadOrCreateNoiseKey reads the Noise key, creating it when the data
// directory predates it.
func loadOrCreateNoiseKey(cfg *homeserver.Config) (kp noise.KeyPair, created bool, err error) {
	kp, err = loadNoiseKey(cfg)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err = createNoiseKey(cfg)
		return kp, err == nil, err
	}
	return kp, false, err
}
