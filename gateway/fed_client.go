package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// Federation client limits.
const (
	// fedMaxResponse bounds a federation response body.
	//
	// NOTSPEC: the spec sets no limit; /state of a large room runs to tens
	// of megabytes.
	fedMaxResponse = 64 << 20
	// fedDialTimeout bounds one TCP connect attempt.
	fedDialTimeout = 10 * time.Second
)

// FederationClientConfig configures a FederationClient.
type FederationClientConfig struct {
	// ServerName is our server name: the origin of every request.
	ServerName string
	// KeyID and Key are our signing key ("ed25519:VERSION").
	KeyID string
	Key   ed25519.PrivateKey
	// RootCAs verifies peers' certificates; the system roots when nil.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any certificate (the
	// --federation-tls-insecure switch; tests and private meshes only).
	InsecureSkipVerify bool
	// Discovery resolves server names; when nil, one is made with the
	// system resolver and an HTTP client with the same TLS settings and
	// the same address guard. A Discovery given here fetches .well-known
	// with its own client, unguarded unless that client is.
	Discovery *Discovery
	// AllowPrivateAddresses lets requests reach servers at loopback,
	// private, link-local and other non-public addresses (config
	// federation.allow_private_addresses; addrguard.go). Otherwise the
	// address actually dialled, after .well-known, SRV and A/AAAA, is
	// checked when connecting and such addresses are refused: server
	// names come from users (room aliases, user IDs, mxc URIs, a join's
	// server_name), who must not make the node connect into its own
	// network.
	AllowPrivateAddresses bool
	// AllowedRanges are non-public networks that may be reached all the
	// same (config federation.allowed_ranges): the operator's own
	// federation network.
	AllowedRanges []netip.Prefix
	// Logger is injected; discarded when nil.
	Logger *slog.Logger
}

// FederationClient makes outbound federation requests over HTTPS: it
// resolves the destination (Discovery), connects to the resolved address
// with the resolved TLS name and Host header, and signs every request with
// X-Matrix (package xmatrix). Unless allowed, it refuses to connect to
// non-public addresses (FederationClientConfig.AllowPrivateAddresses). It
// is safe for concurrent use.
type FederationClient struct {
	origin string
	keyID  string
	key    ed25519.PrivateKey
	disc   *Discovery
	http   *http.Client
	log    *slog.Logger
}

// FederationResponse is a federation response: status and body.
type FederationResponse struct {
	Status int
	// Proto is the HTTP version used, "HTTP/2.0" or "HTTP/1.1".
	Proto  string
	Header http.Header
	Body   []byte
}

// FederationError is returned for a non-2xx federation response.
type FederationError struct {
	Status  int
	ErrCode string // the Matrix errcode, "" if the body had none
	Message string
}

func (e *FederationError) Error() string {
	if e.ErrCode == "" {
		return fmt.Sprintf("federation request: HTTP %d", e.Status)
	}
	return fmt.Sprintf("federation request: HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
}

type destKey struct{}

// errFedAddress refuses a federation server at a non-public address.
var errFedAddress = errors.New("federation server address is not public " +
	"(federation.allow_private_addresses is off and no federation.allowed_ranges entry covers it)")

// NewFederationClient returns a client for cfg. With InsecureSkipVerify it
// logs a warning at construction, since peers are then not authenticated.
func NewFederationClient(cfg FederationClientConfig) (*FederationClient, error) {
	if cfg.ServerName == "" {
		return nil, errors.New("new federation client: server name is required")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize || !strings.HasPrefix(cfg.KeyID, "ed25519:") {
		return nil, errors.New("new federation client: an ed25519 signing key and its ID are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.InsecureSkipVerify {
		log.Warn("FEDERATION TLS CERTIFICATE VERIFICATION IS OFF: peers are not authenticated at the TLS layer; use this only in tests and private meshes",
			"server_name", cfg.ServerName)
	}
	var guard *addrGuard
	if !cfg.AllowPrivateAddresses {
		guard = &addrGuard{refused: errFedAddress}
		for _, p := range cfg.AllowedRanges {
			guard.allowed = append(guard.allowed, p.Masked())
		}
	}
	c := &FederationClient{origin: cfg.ServerName, keyID: cfg.KeyID, key: cfg.Key, disc: cfg.Discovery, log: log}
	baseTLS := &tls.Config{RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, logged above
	if c.disc == nil {
		d, err := NewDiscovery(DiscoveryConfig{Client: wellKnownClient(baseTLS, guard), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("new federation client: %w", err)
		}
		c.disc = d
	}
	dialer := guard.dialer(fedDialTimeout)
	transport := &http.Transport{
		Proxy: nil,
		// Connections are pooled per URL host, which is the destination's
		// server name; the dial goes to the resolved addresses.
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dest, ok := ctx.Value(destKey{}).(Destination)
			if !ok {
				return nil, errors.New("federation dial: no resolved destination")
			}
			cfg := baseTLS.Clone()
			cfg.ServerName = dest.TLSName // Go sends no SNI when this is an IP
			// HTTP/2 when the peer offers it: HPACK makes repeated
			// federation headers (Authorization above all) cheap.
			cfg.NextProtos = []string{"h2", "http/1.1"}
			var errs []error
			for _, addr := range dest.Addrs {
				raw, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				conn := tls.Client(raw, cfg)
				if err := conn.HandshakeContext(ctx); err != nil {
					raw.Close()
					errs = append(errs, fmt.Errorf("TLS with %s at %s: %w", dest.TLSName, addr, err))
					continue
				}
				return conn, nil
			}
			return nil, fmt.Errorf("federation dial %s: %w", dest.ServerName, errors.Join(errs...))
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	c.http = &http.Client{
		Transport: transport,
		// A federation request is never redirected: the signature covers
		// the target.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Do sends one federation request to destination: method, uri (the
// request target starting with "/_matrix/", query included, as it is to be
// signed) and an optional JSON body. Unless unsigned is set it carries an
// X-Matrix Authorization header. A non-2xx answer returns the response and
// a *FederationError.
func (c *FederationClient) Do(ctx context.Context, destination, method, uri string, body []byte) (*FederationResponse, error) {
	return c.do(ctx, destination, method, uri, body, true)
}

// GetServerKeys fetches destination's /_matrix/key/v2/server response
// (unsigned, as the spec's key API needs no authentication). Verify it
// with keys.Verify.
func (c *FederationClient) GetServerKeys(ctx context.Context, destination string) ([]byte, error) {
	resp, err := c.do(ctx, destination, http.MethodGet, "/_matrix/key/v2/server", nil, false)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *FederationClient) do(ctx context.Context, destination, method, uri string, body []byte, sign bool) (*FederationResponse, error) {
	if !strings.HasPrefix(uri, "/") {
		return nil, fmt.Errorf("federation %s %s: uri must start with /", method, uri)
	}
	dest, err := c.disc.Resolve(ctx, destination)
	if err != nil {
		return nil, fmt.Errorf("federation %s %s%s: %w", method, destination, uri, err)
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, destKey{}, dest), method, "https://"+destination+"/", rd)
	if err != nil {
		return nil, fmt.Errorf("federation %s %s%s: %w", method, destination, uri, err)
	}
	// The URL host is the server name so that connections are pooled per
	// destination; the target goes out byte for byte as signed (an Opaque
	// URL is sent as is, with RawQuery after "?").
	path, query, hasQuery := strings.Cut(uri, "?")
	req.URL = &url.URL{Scheme: "https", Host: destination, Opaque: path, RawQuery: query, ForceQuery: hasQuery}
	req.Host = dest.Host
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if sign {
		h, err := xmatrix.Sign(xmatrix.Request{Method: method, URI: uri, Origin: c.origin, Destination: destination, Content: body}, c.keyID, c.key)
		if err != nil {
			return nil, fmt.Errorf("federation %s %s%s: %w", method, destination, uri, err)
		}
		v, err := h.Format()
		if err != nil {
			return nil, fmt.Errorf("federation %s %s%s: %w", method, destination, uri, err)
		}
		req.Header.Set("Authorization", v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("federation %s %s%s: %w", method, destination, uri, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, fedMaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("federation %s %s%s: read body: %w", method, destination, uri, err)
	}
	if len(rb) > fedMaxResponse {
		return nil, fmt.Errorf("federation %s %s%s: response over %d bytes", method, destination, uri, fedMaxResponse)
	}
	out := &FederationResponse{Status: resp.StatusCode, Proto: resp.Proto, Header: resp.Header, Body: rb}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fe := &FederationError{Status: resp.StatusCode}
		var e struct {
			ErrCode string `json:"errcode"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(rb, &e) == nil {
			fe.ErrCode, fe.Message = e.ErrCode, e.Error
		}
		return out, fmt.Errorf("federation %s %s%s: %w", method, destination, uri, fe)
	}
	return out, nil
}
