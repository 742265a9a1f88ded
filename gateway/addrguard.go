package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Outbound connections whose destination users choose (a pusher's URL, a
// server name in a room alias, user ID, mxc URI, server_name parameter or
// .well-known delegation) must not let users make the node connect to
// services on its own network: loopback, private networks, link-local
// (cloud metadata at 169.254.169.254) and the like. An addrGuard checks
// the address actually dialled, in the dialer's Control hook, so a name,
// a .well-known delegation or an SRV target cannot resolve around it, and
// a refused address gets no packet at all. Proxies are switched off: a
// proxy would connect on the node's behalf, unchecked.

// addrGuard refuses connections to non-public addresses outside its
// allowed ranges. A nil *addrGuard refuses nothing. It is immutable and
// safe for concurrent use.
type addrGuard struct {
	// allowed are non-public ranges that may still be reached (an
	// operator's own federation network).
	allowed []netip.Prefix
	// refused is wrapped by every refusal; its text names the setting
	// that would allow the address.
	refused error
}

// permits reports whether a may be connected to.
func (g *addrGuard) permits(a netip.Addr) bool {
	if g == nil || publicAddr(a) {
		return true
	}
	a = a.Unmap()
	for _, p := range g.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// control is a net.Dialer Control hook: it runs after DNS, before the
// connect, with the "ip:port" about to be dialled.
func (g *addrGuard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !g.permits(ap.Addr()) {
		return fmt.Errorf("%w: %s", g.refused, address)
	}
	return nil
}

// dialer returns a dialer with timeout that checks every address with g.
func (g *addrGuard) dialer(timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if g != nil {
		d.Control = g.control
	}
	return d
}

// guardDial makes t dial through g (after DNS) with timeout, and never
// through a proxy.
func guardDial(t *http.Transport, g *addrGuard, timeout time.Duration) {
	t.DialContext = g.dialer(timeout).DialContext
	t.Proxy = nil
}

// publicAddr reports whether a is an address a user-chosen destination
// may be at: not loopback, private (RFC 1918, RFC 4193), link-local,
// unspecified, multicast, shared (RFC 6598 100.64/10), documentation or
// otherwise reserved (IANA special-purpose address registries, RFC 6890);
// an IPv4 address embedded in an IPv6 one (IPv4-mapped, NAT64 RFC 6052,
// 6to4 RFC 3056) is judged as that IPv4 address.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64WellKnown.Contains(a):
			a = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(a):
			a = netip.AddrFrom4([4]byte(b[2:6]))
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// IPv6 prefixes that embed an IPv4 address.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 §2.1, IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056 §2, IPv4 in bits 16–47
)

// nonPublic lists ranges the netip predicates do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791)
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation TEST-NET-1 (RFC 5737)
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (RFC 7526)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"), // documentation TEST-NET-2 (RFC 5737)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation TEST-NET-3 (RFC 5737)
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast (RFC 1112)
	netip.MustParsePrefix("::/96"),           // IPv4-compatible, deprecated (RFC 4291)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("100::/64"),        // discard-only (RFC 6666)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("fec0::/10"),       // site-local, deprecated (RFC 3879)
}
