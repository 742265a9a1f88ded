package homeserver

// Server ACLs. Spec: client-server-api "m.room.server_acl" and
// server-server-api "Server Access Control Lists (ACLs)": a room's ACL
// applies to the server name without its port; allow_ip_literals (default
// true) false denies IPv4/IPv6 literals; a name matching any deny glob is
// denied; otherwise it must match an allow glob (allow defaults to empty,
// denying everyone). Globs: "*" matches zero or more characters, "?"
// exactly one.

import (
	"encoding/json"
	"net"
	"strings"
)

// ServerAllowed reports whether serverName may take part in a room whose
// m.room.server_acl state event has content acl. A nil or empty acl (no
// ACL event in the room state) allows every server; content that is not a
// JSON object is treated as no ACL, as the event's content is not
// validated when it is sent. Room endpoints call it for the origin of
// every federation request naming a room, and for the origin of PDUs and
// EDUs.
func ServerAllowed(acl json.RawMessage, serverName string) bool {
	if len(acl) == 0 {
		return true
	}
	var c struct {
		AllowIPLiterals *bool `json:"allow_ip_literals"`
		Allow           []any `json:"allow"`
		Deny            []any `json:"deny"`
	}
	if err := json.Unmarshal(acl, &c); err != nil {
		// A malformed field type also lands here: with the bad field zero,
		// decode again field by field so one bad list does not disable
		// the rest of the ACL.
		var m map[string]json.RawMessage
		if json.Unmarshal(acl, &m) != nil {
			return true
		}
		_ = json.Unmarshal(m["allow_ip_literals"], &c.AllowIPLiterals)
		_ = json.Unmarshal(m["allow"], &c.Allow)
		_ = json.Unmarshal(m["deny"], &c.Deny)
	}
	host := serverHost(serverName)
	if c.AllowIPLiterals != nil && !*c.AllowIPLiterals && isIPLiteral(host) {
		return false
	}
	for _, g := range c.Deny {
		if s, ok := g.(string); ok && aclGlobMatch(strings.ToLower(s), host) {
			return false
		}
	}
	for _, g := range c.Allow {
		if s, ok := g.(string); ok && aclGlobMatch(strings.ToLower(s), host) {
			return true
		}
	}
	return false
}

// serverHost is the server name without its port, lower-cased (DNS
// names are case-insensitive, RFC 4343).
func serverHost(name string) string {
	host := name
	if strings.HasPrefix(name, "[") {
		if i := strings.IndexByte(name, ']'); i >= 0 {
			host = name[:i+1]
		}
	} else if i := strings.LastIndexByte(name, ':'); i >= 0 {
		host = name[:i]
	}
	return strings.ToLower(host)
}

func isIPLiteral(host string) bool {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.ParseIP(h) != nil
}

// aclGlobMatch matches s against a glob of "*" and "?", iteratively (no
// backtracking blow-up on patterns like "a*a*a*b").
func aclGlobMatch(glob, s string) bool {
	g, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case g < len(glob) && (glob[g] == '?' || glob[g] == s[i]):
			g++
			i++
		case g < len(glob) && glob[g] == '*':
			star, mark = g, i
			g++
		case star >= 0:
			g = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}
