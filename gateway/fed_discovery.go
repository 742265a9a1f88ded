package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mxmesh/mxmesh/clock"
)

// Federation discovery constants. Spec: server-server-api "Resolving
// server names".
const (
	// DefaultFederationPort is used when neither the server name, the
	// delegation nor SRV gives a port.
	DefaultFederationPort = 8448
	// wellKnownDefaultTTL is the cache time of a .well-known answer
	// without cache headers ("The recommended sensible default is 24
	// hours").
	wellKnownDefaultTTL = 24 * time.Hour
	// wellKnownMaxTTL caps any .well-known cache time ("48 hours is
	// recommended").
	wellKnownMaxTTL = 48 * time.Hour
	// wellKnownInvalidTTL is the cache time of an answer that is not a
	// valid delegation (non-200, bad JSON, no m.server): "Errors are
	// recommended to be cached for up to an hour".
	wellKnownInvalidTTL = time.Hour
	// wellKnownDownTTL is the first cache time of a request that got no
	// answer at all; it doubles with each consecutive failure up to
	// wellKnownInvalidTTL ("servers are encouraged to exponentially back
	// off for repeated failures").
	wellKnownDownTTL = 2 * time.Minute
	// wellKnownMaxBody bounds the .well-known body we read.
	//
	// NOTSPEC: the spec sets no limit; a delegation is a few dozen bytes.
	wellKnownMaxBody = 64 << 10
	// wellKnownTimeout bounds one .well-known fetch, redirects included.
	//
	// NOTSPEC: the spec sets no timeout.
	wellKnownTimeout = 30 * time.Second
)

// Resolver is the DNS seam of Discovery; *net.Resolver satisfies it.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

// Destination is where and how to reach a server.
type Destination struct {
	// ServerName is the name that was resolved; requests are signed for it.
	ServerName string
	// Addrs are "ip:port" addresses to try in order.
	Addrs []string
	// Host is the Host header to send.
	Host string
	// TLSName is the name the certificate must be valid for, and the SNI
	// to send unless it is an IP address (then no SNI is sent).
	TLSName string
}

// DiscoveryConfig configures a Discovery.
type DiscoveryConfig struct {
	// Resolver does DNS lookups; net.DefaultResolver when nil.
	Resolver Resolver
	// Client fetches https://<hostname>/.well-known/matrix/server; it
	// should verify certificates like the federation client does.
	// Required.
	Client *http.Client
	// Clock gives the time for cache expiry; clock.Real() when nil.
	Clock clock.Clock
	// Logger gets debug lines about delegations; discarded when nil.
	Logger *slog.Logger
}

// wellKnownClient returns the client that fetches .well-known/matrix/server
// with tlsCfg, connecting only where guard permits (nil: anywhere) and
// never through a proxy. Redirects are followed, each to a checked
// address.
func wellKnownClient(tlsCfg *tls.Config, guard *addrGuard) *http.Client {
	t := &http.Transport{TLSClientConfig: tlsCfg.Clone()}
	guardDial(t, guard, fedDialTimeout)
	return &http.Client{Timeout: wellKnownTimeout, Transport: t}
}

// Discovery resolves server names to Destinations and caches .well-known
// answers. It is safe for concurrent use.
type Discovery struct {
	res    Resolver
	client *http.Client
	clock  clock.Clock
	log    *slog.Logger

	mu        sync.Mutex
	wellKnown map[string]wellKnownEntry
}

type wellKnownEntry struct {
	delegated string // "" when the lookup failed
	expires   time.Time
	failures  int // consecutive lookups that got no answer
}

// NewDiscovery returns a Discovery for cfg.
func NewDiscovery(cfg DiscoveryConfig) (*Discovery, error) {
	if cfg.Client == nil {
		return nil, errors.New("new discovery: an HTTP client is required")
	}
	d := &Discovery{res: cfg.Resolver, client: cfg.Client, clock: cfg.Clock, log: cfg.Logger, wellKnown: map[string]wellKnownEntry{}}
	if d.res == nil {
		d.res = net.DefaultResolver
	}
	if d.clock == nil {
		d.clock = clock.Real()
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// SplitServerName splits a server name into host and port (0 when
// absent), checking the grammar of appendices "Server Name":
// server_name = hostname [ ":" port ], hostname = IPv4address /
// "[" IPv6address "]" / dns-name, port = 1*5DIGIT. For an IPv6 literal,
// host is returned without brackets.
func SplitServerName(name string) (host string, port int, err error) {
	if name == "" || len(name) > 255 {
		return "", 0, fmt.Errorf("server name %q: empty or longer than 255 bytes", name)
	}
	host = name
	if strings.HasPrefix(name, "[") {
		end := strings.IndexByte(name, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("server name %q: unterminated IPv6 literal", name)
		}
		host = name[1:end]
		rest := name[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, fmt.Errorf("server name %q: bad IPv6 literal", name)
		}
		if rest == "" {
			return host, 0, nil
		}
		if rest[0] != ':' {
			return "", 0, fmt.Errorf("server name %q: junk after IPv6 literal", name)
		}
		port, err = parsePort(rest[1:])
		if err != nil {
			return "", 0, fmt.Errorf("server name %q: %w", name, err)
		}
		return host, port, nil
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		host = name[:i]
		if port, err = parsePort(name[i+1:]); err != nil {
			return "", 0, fmt.Errorf("server name %q: %w", name, err)
		}
	}
	if host == "" {
		return "", 0, fmt.Errorf("server name %q: empty hostname", name)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", 0, fmt.Errorf("server name %q: hostname has %q", name, c)
		}
	}
	return host, port, nil
}

func parsePort(s string) (int, error) {
	if len(s) == 0 || len(s) > 5 {
		return 0, fmt.Errorf("port %q is not 1 to 5 digits", s)
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not in 1..65535", s)
	}
	return p, nil
}

// isIPLiteral reports whether host (without brackets) is an IP address.
func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// joinHostPort is net.JoinHostPort with an int port.
func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// Resolve finds where to send requests for serverName, following the
// spec's steps in order (server-server-api "Resolving server names"):
//
//  1. IP literal: that address, the given port or 8448; Host is the server
//     name; the certificate must be for the IP.
//  2. hostname:port: A/AAAA of hostname; Host is the server name.
//  3. /.well-known/matrix/server on the hostname, and if it delegates to
//     <delegated>[:port]: an IP literal directly; with a port, A/AAAA;
//     without, SRV _matrix-fed._tcp then _matrix._tcp of <delegated>, then
//     A/AAAA on port 8448; Host and certificate are <delegated> (with the
//     port in Host when one was given).
//  4. SRV _matrix-fed._tcp then _matrix._tcp of the hostname.
//  5. A/AAAA of the hostname, port 8448.
//
// In steps 4 and 5 Host and certificate name are the hostname.
func (d *Discovery) Resolve(ctx context.Context, serverName string) (Destination, error) {
	host, port, err := SplitServerName(serverName)
	if err != nil {
		return Destination{}, fmt.Errorf("resolve server name: %w", err)
	}
	dest := Destination{ServerName: serverName, Host: serverName, TLSName: host}
	if isIPLiteral(host) { // step 1
		if port == 0 {
			port = DefaultFederationPort
		}
		dest.Addrs = []string{joinHostPort(host, port)}
		return dest, nil
	}
	if port != 0 { // step 2
		if dest.Addrs, err = d.lookupHost(ctx, host, port); err != nil {
			return Destination{}, fmt.Errorf("resolve %s: %w", serverName, err)
		}
		return dest, nil
	}
	if delegated := d.wellKnownFor(ctx, host); delegated != "" { // step 3
		dhost, dport, err := SplitServerName(delegated)
		if err != nil { // checked when cached; kept for safety
			return Destination{}, fmt.Errorf("resolve %s: delegation: %w", serverName, err)
		}
		dest.Host, dest.TLSName = delegated, dhost
		switch {
		case isIPLiteral(dhost):
			if dport == 0 {
				dport = DefaultFederationPort
			}
			dest.Addrs = []string{joinHostPort(dhost, dport)}
		case dport != 0:
			dest.Addrs, err = d.lookupHost(ctx, dhost, dport)
		default:
			dest.Addrs, err = d.lookupSRVOrHost(ctx, dhost)
		}
		if err != nil {
			return Destination{}, fmt.Errorf("resolve %s (delegated to %s): %w", serverName, delegated, err)
		}
		return dest, nil
	}
	// Steps 4 and 5.
	if dest.Addrs, err = d.lookupSRVOrHost(ctx, host); err != nil {
		return Destination{}, fmt.Errorf("resolve %s: %w", serverName, err)
	}
	return dest, nil
}

// lookupSRVOrHost tries SRV _matrix-fed._tcp, then the deprecated
// _matrix._tcp, then A/AAAA on the default port.
func (d *Discovery) lookupSRVOrHost(ctx context.Context, host string) ([]string, error) {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, srvs, err := d.res.LookupSRV(ctx, service, "tcp", host)
		if err != nil || len(srvs) == 0 {
			continue // no record (or DNS failure): fall through to the next step
		}
		var addrs []string
		var lastErr error
		for _, s := range srvs {
			target := strings.TrimSuffix(s.Target, ".")
			if target == "" { // "." means the service is not offered (RFC 2782)
				continue
			}
			a, err := d.lookupHost(ctx, target, int(s.Port))
			if err != nil {
				lastErr = err
				continue
			}
			addrs = append(addrs, a...)
		}
		if len(addrs) > 0 {
			return addrs, nil
		}
		if lastErr != nil {
			return nil, fmt.Errorf("SRV _%s._tcp.%s: %w", service, host, lastErr)
		}
	}
	return d.lookupHost(ctx, host, DefaultFederationPort)
}

func (d *Discovery) lookupHost(ctx context.Context, host string, port int) ([]string, error) {
	ips, err := d.res.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("look up %s: no addresses", host)
	}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = joinHostPort(ip, port)
	}
	return addrs, nil
}

// wellKnownFor returns the cached or freshly fetched delegation of host,
// "" when there is none.
func (d *Discovery) wellKnownFor(ctx context.Context, host string) string {
	now := d.clock.Now()
	d.mu.Lock()
	e, ok := d.wellKnown[host]
	d.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.delegated
	}
	delegated, ttl, answered, err := d.fetchWellKnown(ctx, host, now)
	failures := 0
	if err != nil {
		if !answered {
			failures = e.failures + 1
			ttl = wellKnownDownTTL << min(failures-1, 5)
			ttl = min(ttl, wellKnownInvalidTTL)
		}
		d.log.Debug("federation .well-known lookup failed", "host", host, "err", err, "retry_in", ttl)
	} else {
		d.log.Debug("federation delegation", "host", host, "delegated", delegated, "ttl", ttl)
	}
	d.mu.Lock()
	d.wellKnown[host] = wellKnownEntry{delegated: delegated, expires: now.Add(ttl), failures: failures}
	d.mu.Unlock()
	return delegated
}

// fetchWellKnown GETs https://host/.well-known/matrix/server. answered
// tells whether any HTTP response came back (for the backoff); ttl is how
// long to cache the outcome.
func (d *Discovery) fetchWellKnown(ctx context.Context, host string, now time.Time) (delegated string, ttl time.Duration, answered bool, err error) {
	u := "https://" + host + "/.well-known/matrix/server" // host is a DNS name here, never an IP literal
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", wellKnownInvalidTTL, false, fmt.Errorf("well-known request: %w", err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return "", 0, false, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, wellKnownMaxBody+1))
	if err != nil {
		return "", 0, false, fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", wellKnownInvalidTTL, true, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	if len(body) > wellKnownMaxBody {
		return "", wellKnownInvalidTTL, true, fmt.Errorf("GET %s: body over %d bytes", u, wellKnownMaxBody)
	}
	var wk struct {
		Server *string `json:"m.server"`
	}
	// The spec asks to parse the body as JSON whatever its Content-Type.
	if err := json.Unmarshal(body, &wk); err != nil {
		return "", wellKnownInvalidTTL, true, fmt.Errorf("GET %s: %w", u, err)
	}
	if wk.Server == nil {
		return "", wellKnownInvalidTTL, true, fmt.Errorf("GET %s: no m.server", u)
	}
	if _, _, err := SplitServerName(*wk.Server); err != nil {
		return "", wellKnownInvalidTTL, true, fmt.Errorf("GET %s: m.server: %w", u, err)
	}
	return *wk.Server, cacheTTL(resp.Header, now), true, nil
}

// cacheTTL reads how long a response may be cached (RFC 9111 §5.2.2:
// no-store, max-age; §5.3 Expires), defaulting to wellKnownDefaultTTL and
// capped at wellKnownMaxTTL.
func cacheTTL(h http.Header, now time.Time) time.Duration {
	ttl, found := time.Duration(0), false
	for _, v := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if secs, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && secs >= 0 {
					ttl, found = time.Duration(min(secs, int64(wellKnownMaxTTL/time.Second)))*time.Second, true
				}
			}
		}
	}
	if !found {
		if exp := h.Get("Expires"); exp != "" {
			t, err := http.ParseTime(exp)
			if err != nil {
				return 0 // an invalid Expires means "already expired" (RFC 9111 §5.3)
			}
			ttl, found = max(t.Sub(now), 0), true
		}
	}
	if !found {
		ttl = wellKnownDefaultTTL
	}
	return min(ttl, wellKnownMaxTTL)
}
