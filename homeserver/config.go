package homeserver

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Config is a node's configuration: one YAML file (ConfigFile) in the data
// directory, written with comments by `mxmesh init`. Relative file names in
// it are relative to that directory.
type Config struct {
	// ServerName is the Matrix server name (the part after ":" in user IDs).
	ServerName string `yaml:"server_name"`
	// ClientAddr is the plain-HTTP client API listener (host:port); empty
	// disables it.
	ClientAddr string `yaml:"client_addr"`
	// FederationAddr is the HTTPS listener (host:port) serving the client
	// and federation APIs with TLSCert/TLSKey; empty disables it.
	FederationAddr string `yaml:"federation_addr"`
	// CoAPAddr is the CoAP-over-Noise UDP listener (host:port); empty
	// disables it.
	CoAPAddr string `yaml:"coap_addr"`
	// WellKnownServer, when set, is served as {"m.server": …} at
	// /.well-known/matrix/server: the host[:port] that federation traffic
	// for ServerName goes to (server-server-api "Server discovery").
	WellKnownServer string `yaml:"well_known_server"`
	// WellKnownClient, when set, is served as {"m.homeserver": {"base_url":
	// …}} at /.well-known/matrix/client (client-server-api "Well-known
	// URIs").
	WellKnownClient string `yaml:"well_known_client"`
	// KeyNotaries are asked, in order, for a server's signing keys when
	// the server itself does not answer (server-server-api "Querying Keys
	// Through Another Server"). Empty: direct fetches only.
	KeyNotaries []KeyNotary `yaml:"key_notaries"`
	// FederationTLSInsecure skips certificate checks on outbound federation
	// (test setups with self-signed peers only).
	FederationTLSInsecure bool `yaml:"federation_tls_insecure"`

	// Database is the SQLite file.
	Database string `yaml:"database"`
	// SigningKeyFile holds the ed25519 Matrix signing key.
	SigningKeyFile string `yaml:"signing_key"`
	// NoiseKeyFile holds the X25519 Noise static key.
	NoiseKeyFile string `yaml:"noise_key"`
	// TLSCert and TLSKey are PEM files for the HTTPS listener.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`

	// Mesh configures the CoAP/Noise listener: pins, trust on first use,
	// clients, the plain-CoAP debug listener (config_mesh.go).
	Mesh MeshConfig `yaml:"mesh"`

	Registration RegistrationConfig `yaml:"registration"`
	RateLimit    RateLimitConfig    `yaml:"rate_limit"`

	// MaxRequestBytes bounds a request body; larger ones get 413 M_TOO_LARGE.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// BcryptCost is the password hashing cost (4–31).
	BcryptCost int `yaml:"bcrypt_cost"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// Presence enables presence (default on); false stops storing and
	// sending it, which saves bytes on slow links (presence.go).
	Presence bool `yaml:"presence"`
	// Media configures the content repository (media.go).
	Media MediaConfig `yaml:"media"`
	// UserDirectory configures the user directory search (user_directory.go).
	UserDirectory UserDirectoryConfig `yaml:"user_directory"`
	// Push configures notifications to push gateways (pushers.go).
	Push PushConfig `yaml:"push"`
	// Federation configures which addresses outbound HTTPS federation may
	// connect to (pinned mesh peers are reached over CoAP/Noise and are
	// not affected).
	Federation FederationConfig `yaml:"federation"`

	// Dir is the data directory the file was loaded from (not in YAML).
	Dir string `yaml:"-"`
}

// KeyNotary is a trusted key notary with its verify keys pinned.
type KeyNotary struct {
	ServerName string `yaml:"server_name"`
	// VerifyKeys maps key IDs ("ed25519:…") to unpadded base64 public keys.
	VerifyKeys map[string]string `yaml:"verify_keys"`
}

// Keys decodes the notary's verify keys.
func (k KeyNotary) Keys() (map[string]ed25519.PublicKey, error) {
	if len(k.VerifyKeys) == 0 {
		return nil, fmt.Errorf("key notary %q: no verify_keys", k.ServerName)
	}
	out := make(map[string]ed25519.PublicKey, len(k.VerifyKeys))
	for id, b64 := range k.VerifyKeys {
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
		if !strings.HasPrefix(id, "ed25519:") || err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key notary %q: verify key %q: want ed25519:ID and 32 bytes of base64", k.ServerName, id)
		}
		out[id] = raw
	}
	return out, nil
}

// PushConfig configures how the node reaches push gateways.
type PushConfig struct {
	// AllowPrivateAddresses lets notifications go to push gateways at
	// loopback, private, link-local and other non-public addresses. A
	// pusher's URL is chosen by any user, so by default those addresses
	// are refused when connecting (after DNS), and the node cannot be made
	// to post to services on its own network.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
}

// FederationConfig configures how the node reaches other servers over
// HTTPS federation.
type FederationConfig struct {
	// AllowPrivateAddresses lets federation requests go to servers at
	// loopback, private, link-local and other non-public addresses. Users
	// choose the server names the node connects to (room aliases, user
	// IDs, mxc URIs, a join's server_name), so by default those addresses
	// are refused when connecting (after .well-known, SRV and DNS), and
	// the node cannot be made to connect to services on its own network.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// AllowedRanges are CIDR prefixes ("10.20.0.0/16", "fd00:1::/48") of
	// non-public networks that federation may reach all the same: the
	// operator's own federation network.
	AllowedRanges []string `yaml:"allowed_ranges"`
}

// Prefixes parses AllowedRanges.
func (f FederationConfig) Prefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, r := range f.AllowedRanges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("federation.allowed_ranges %q: want a CIDR prefix like 10.0.0.0/8: %w", r, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// RegistrationConfig controls account creation.
type RegistrationConfig struct {
	// Open allows anyone to register with m.login.dummy.
	Open bool `yaml:"open"`
	// SharedSecret enables /_synapse/admin/v1/register when non-empty.
	SharedSecret string `yaml:"shared_secret"`
}

// RateLimitConfig sets the token buckets applied to API requests.
type RateLimitConfig struct {
	Enabled bool         `yaml:"enabled"`
	PerIP   BucketConfig `yaml:"per_ip"`
	PerUser BucketConfig `yaml:"per_user"`
	// FederationPerIP limits federation requests (AuthFederation routes)
	// per remote IP before their X-Matrix signature is checked, so an
	// unauthenticated flood costs no signature checks or key fetches.
	// FederationPerOrigin limits them per authenticated origin server.
	// A bucket of zeros does not limit.
	FederationPerIP     BucketConfig `yaml:"federation_per_ip"`
	FederationPerOrigin BucketConfig `yaml:"federation_per_origin"`
}

// BucketConfig is one token bucket: PerSecond refill, Burst capacity.
type BucketConfig struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     float64 `yaml:"burst"`
}

// ConfigFile is the name of the configuration file inside a data directory.
const ConfigFile = "mxmesh.yaml"

// Default addresses (DESIGN.md "Operator interface").
const (
	DefaultClientAddr     = "127.0.0.1:8008"
	DefaultFederationAddr = "127.0.0.1:8448"
	DefaultCoAPAddr       = "127.0.0.1:5683"
)

// DefaultConfig returns the configuration `mxmesh init` writes for
// serverName.
func DefaultConfig(serverName string) *Config {
	return &Config{
		ServerName:      serverName,
		ClientAddr:      DefaultClientAddr,
		FederationAddr:  DefaultFederationAddr,
		CoAPAddr:        DefaultCoAPAddr,
		Database:        "mxmesh.db",
		SigningKeyFile:  "signing.key",
		NoiseKeyFile:    "noise.key",
		TLSCert:         "tls.crt",
		TLSKey:          "tls.key",
		Mesh:            MeshConfig{AcceptClients: true},
		MaxRequestBytes: 1 << 20,
		BcryptCost:      10,
		LogLevel:        "info",
		Presence:        true,
		Media:           defaultMediaConfig(),
		RateLimit: RateLimitConfig{
			Enabled: true,
			PerIP:   BucketConfig{PerSecond: 50, Burst: 200},
			PerUser: BucketConfig{PerSecond: 20, Burst: 100},
			// One origin batches many users' traffic into transactions
			// (one in flight per destination); bursts come from joins and
			// backfill fetching events one by one.
			FederationPerIP:     BucketConfig{PerSecond: 50, Burst: 200},
			FederationPerOrigin: BucketConfig{PerSecond: 50, Burst: 200},
		},
	}
}

// Path resolves a file name from the config against Dir.
func (c *Config) Path(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(c.Dir, name)
}

// Validate checks the configuration for values the node cannot run with.
func (c *Config) Validate() error {
	var errs []error
	if err := ValidateServerName(c.ServerName); err != nil {
		errs = append(errs, err)
	}
	for _, a := range []struct{ name, v string }{
		{"client_addr", c.ClientAddr}, {"federation_addr", c.FederationAddr}, {"coap_addr", c.CoAPAddr},
	} {
		if a.v == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", a.name, a.v, err))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %q: bad port", a.name, a.v))
		}
	}
	if c.WellKnownServer != "" {
		if err := ValidateServerName(c.WellKnownServer); err != nil {
			errs = append(errs, fmt.Errorf("well_known_server: %w", err))
		}
	}
	if c.WellKnownClient != "" {
		if u, err := url.Parse(c.WellKnownClient); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("well_known_client %q: want an http(s) base URL", c.WellKnownClient))
		}
	}
	for _, kn := range c.KeyNotaries {
		if err := ValidateServerName(kn.ServerName); err != nil {
			errs = append(errs, fmt.Errorf("key_notaries: %w", err))
		}
		if _, err := kn.Keys(); err != nil {
			errs = append(errs, fmt.Errorf("key_notaries: %w", err))
		}
	}
	errs = append(errs, c.Mesh.validate()...)
	errs = append(errs, c.Media.validate()...)
	if _, err := c.Federation.Prefixes(); err != nil {
		errs = append(errs, err)
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		errs = append(errs, fmt.Errorf("bcrypt_cost %d: must be %d–%d", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost))
	}
	if c.MaxRequestBytes < 0 {
		errs = append(errs, fmt.Errorf("max_request_bytes %d: must not be negative", c.MaxRequestBytes))
	}
	if c.RateLimit.Enabled {
		for _, b := range []struct {
			name string
			b    BucketConfig
		}{{"rate_limit.per_ip", c.RateLimit.PerIP}, {"rate_limit.per_user", c.RateLimit.PerUser}} {
			if b.b.PerSecond <= 0 || b.b.Burst < 1 {
				errs = append(errs, fmt.Errorf("%s: per_second must be > 0 and burst ≥ 1", b.name))
			}
		}
		for _, b := range []struct {
			name string
			b    BucketConfig
		}{{"rate_limit.federation_per_ip", c.RateLimit.FederationPerIP}, {"rate_limit.federation_per_origin", c.RateLimit.FederationPerOrigin}} {
			if b.b != (BucketConfig{}) && (b.b.PerSecond <= 0 || b.b.Burst < 1) {
				errs = append(errs, fmt.Errorf("%s: per_second must be > 0 and burst ≥ 1 (both 0: no limit)", b.name))
			}
		}
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	return nil
}

// ValidateServerName checks a server name: a DNS name, IPv4 literal or
// bracketed IPv6 literal, optionally with ":port".
// Spec: appendices "Server Name".
func ValidateServerName(name string) error {
	host := name
	if name == "" {
		return errors.New("server_name is empty")
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.HasSuffix(name, "]") {
		host = name[:i]
		p, err := strconv.Atoi(name[i+1:])
		if err != nil || p < 1 || p > 65535 || name[i+1] == '+' || name[i+1] == '-' {
			return fmt.Errorf("server_name %q: bad port", name)
		}
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") || net.ParseIP(host[1:len(host)-1]) == nil {
			return fmt.Errorf("server_name %q: bad IPv6 literal", name)
		}
		return nil
	}
	if host == "" || len(host) > 255 {
		return fmt.Errorf("server_name %q: bad host name", name)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("server_name %q: bad character %q", name, r)
		}
	}
	return nil
}

// LoadConfig reads and validates DIR/mxmesh.yaml. Unknown keys are errors,
// so typos do not silently fall back to defaults.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	c.Dir = dir
	return c, nil
}

// ParseConfig decodes and validates a YAML configuration; keys that are
// absent keep the DefaultConfig values.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig("")
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// MarshalCommented renders c as the commented YAML file `mxmesh init`
// writes.
func (c *Config) MarshalCommented() ([]byte, error) {
	q := func(s string) string {
		b, _ := yaml.Marshal(s)
		return strings.TrimSpace(string(b))
	}
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, struct {
		*Config
		Q func(string) string
	}{c, q}); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return buf.Bytes(), nil
}

var configTemplate = template.Must(template.New("config").Parse(`# mxmesh node configuration.
# File names are relative to the directory holding this file.

# Matrix server name: the part after ":" in user and room IDs. It cannot be
# changed once accounts and rooms exist.
server_name: {{call .Q .ServerName}}

# Plain-HTTP client API listener (host:port). Empty disables it.
client_addr: {{call .Q .ClientAddr}}
# HTTPS listener for federation and the client API (host:port). Empty disables it.
federation_addr: {{call .Q .FederationAddr}}
# CoAP over Noise (UDP) listener for mesh peers and low-bandwidth clients.
coap_addr: {{call .Q .CoAPAddr}}
# Served at /.well-known/matrix/server as {"m.server": ...} when not empty:
# the host[:port] other servers should send federation traffic to.
well_known_server: {{call .Q .WellKnownServer}}
# Served at /.well-known/matrix/client as the client base URL when not empty.
well_known_client: {{call .Q .WellKnownClient}}
# Servers asked, in order, for another server's signing keys when that
# server does not answer itself. Each entry:
#   - server_name: notary.example.org
#     verify_keys: {"ed25519:KEYID": "UNPADDED-BASE64-PUBLIC-KEY"}
key_notaries:{{range .KeyNotaries}}
  - server_name: {{call $.Q .ServerName}}
    verify_keys:{{range $id, $k := .VerifyKeys}}
      {{call $.Q $id}}: {{call $.Q $k}}{{end}}{{end}}
# Accept any certificate from federation peers. Only for test networks.
federation_tls_insecure: {{.FederationTLSInsecure}}

# SQLite database.
database: {{call .Q .Database}}
# ed25519 Matrix signing key ("ed25519 KEYID BASE64SEED").
signing_key: {{call .Q .SigningKeyFile}}
# X25519 Noise static key.
noise_key: {{call .Q .NoiseKeyFile}}
# PEM certificate and key for the HTTPS listener (self-signed by init;
# replace with real ones to federate with the public network).
tls_cert: {{call .Q .TLSCert}}
tls_key: {{call .Q .TLSKey}}

mesh:
  # Accept mesh servers that are not pinned below, pinning the keys they
  # present on first contact. Off: pin peers with "mxmesh peer add".
  trust_on_first_use: {{.Mesh.TrustOnFirstUse}}
  # Let low-bandwidth clients that pinned this server's key token open
  # Noise sessions (they still log in with an access token).
  accept_clients: {{.Mesh.AcceptClients}}
  # A second CoAP listener WITHOUT Noise, for debugging with standard CoAP
  # tools; loopback ip:port only. Empty disables it.
  plain_coap_addr: {{call .Q .Mesh.PlainCoAPAddr}}
  # Pinned mesh peers: name, CoAP/Noise address, key token from
  # "mxmesh peer show" on the peer, and mutual (it pinned us too).
  peers:{{range .Mesh.Peers}}
    - name: {{call $.Q .Name}}
      addr: {{call $.Q .Addr}}
      key: {{call $.Q .Key}}
      mutual: {{.Mutual}}{{end}}
  # The link this server sends on (its slowest towards its peers): CoAP
  # retransmission and Noise handshake/keepalive timers are scaled to it.
  # bit_rate in bit/s (0: fast), frame_time and latency as durations
  # ("250ms"), mtu in bytes (0: 1152).
  link:
    bit_rate: {{.Mesh.Link.BitRate}}
    frame_time: {{call .Q .Mesh.Link.FrameTime}}
    latency: {{call .Q .Mesh.Link.Latency}}
    mtu: {{.Mesh.Link.MTU}}

registration:
  # Let anyone create an account (m.login.dummy). Closed by default; use
  # "mxmesh user add" to create accounts instead.
  open: {{.Registration.Open}}
  # Enables /_synapse/admin/v1/register (HMAC-SHA1 shared-secret
  # registration) when not empty.
  shared_secret: {{call .Q .Registration.SharedSecret}}

# Token buckets: per_second refill rate, burst capacity. Exceeding them
# gives 429 M_LIMIT_EXCEEDED with retry_after_ms.
rate_limit:
  enabled: {{.RateLimit.Enabled}}
  per_ip:
    per_second: {{.RateLimit.PerIP.PerSecond}}
    burst: {{.RateLimit.PerIP.Burst}}
  per_user:
    per_second: {{.RateLimit.PerUser.PerSecond}}
    burst: {{.RateLimit.PerUser.Burst}}
  # Federation requests from other servers, per remote IP (checked before
  # the signature) and per authenticated origin server. 0 and 0: no limit.
  federation_per_ip:
    per_second: {{.RateLimit.FederationPerIP.PerSecond}}
    burst: {{.RateLimit.FederationPerIP.Burst}}
  federation_per_origin:
    per_second: {{.RateLimit.FederationPerOrigin.PerSecond}}
    burst: {{.RateLimit.FederationPerOrigin.Burst}}

# Largest request body accepted, in bytes (413 M_TOO_LARGE beyond).
max_request_bytes: {{.MaxRequestBytes}}
# bcrypt cost for password hashes (4–31; each step doubles the work).
bcrypt_cost: {{.BcryptCost}}
# debug, info, warn or error.
log_level: {{call .Q .LogLevel}}
# Presence (online, away, status message) of users sharing a room with
# this server's users; false saves the bytes it costs on slow links.
presence: {{.Presence}}

media:
  # Largest upload, and largest item fetched from another server, in bytes
  # (413 M_TOO_LARGE beyond); uploads are bounded by this, not max_request_bytes.
  max_upload_bytes: {{.Media.MaxUploadBytes}}
  # Total size of the media one local user may upload, in bytes; 0 is
  # unlimited (403 M_LIMIT_EXCEEDED beyond).
  max_bytes_per_user: {{.Media.MaxBytesPerUser}}
  # Total size of the media fetched from other servers and kept, in bytes;
  # the least recently used items are dropped to make room (uploads never
  # are). 0 is unlimited; otherwise at least max_upload_bytes.
  remote_cache_bytes: {{.Media.RemoteCacheBytes}}

push:
  # Let notifications go to push gateways at loopback or private addresses
  # (a pusher's URL is chosen by users; keep false unless the gateway is on
  # your own network).
  allow_private_addresses: {{.Push.AllowPrivateAddresses}}

federation:
  # Let outbound federation connect to servers at loopback, private or
  # link-local addresses. Server names are chosen by users; keep false
  # unless every server you federate with over HTTPS is on your own
  # network. Pinned mesh peers (CoAP/Noise) are not affected.
  allow_private_addresses: {{.Federation.AllowPrivateAddresses}}
  # Private networks federation may reach while that is false (your own
  # federation network), as CIDR prefixes; each entry:
  #   - 10.20.0.0/16
  allowed_ranges:{{range .Federation.AllowedRanges}}
    - {{call $.Q .}}{{end}}

user_directory:
  # true: the user directory finds every local user; false: only users
  # sharing a room with the searcher or in a published room.
  search_all_users: {{.UserDirectory.SearchAllUsers}}
`))
