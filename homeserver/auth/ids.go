package auth

import (
	"strings"
)

// maxUserIDLen is the longest user ID the grammar allows, in bytes,
// including the "@" sigil and the server name.
// Spec: appendices.md "User Identifiers".
const maxUserIDLen = 255

// validUserID reports whether s is a user ID: "@" localpart ":" server_name.
// Historical localparts (any printable ASCII except ":") are accepted, as the
// spec requires servers to accept them in events they did not create.
// Spec: appendices.md "User Identifiers", "Historical User IDs" and
// "Server Name".
func validUserID(s string) bool {
	if len(s) < 4 || len(s) > maxUserIDLen || s[0] != '@' {
		return false
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" {
		return false
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return validServerName(server)
}

// validServerName checks server_name = hostname [ ":" port ], where hostname
// is an IPv4 literal, a bracketed IPv6 literal or a DNS name.
// Spec: appendices.md "Server Name".
func validServerName(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[:end+1], s[end+1:]
		inner := host[1 : len(host)-1]
		if len(inner) < 2 || len(inner) > 45 {
			return false
		}
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		if host == "" || len(host) > 255 {
			return false
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !isAlnum(c) && c != '-' && c != '.' {
				return false
			}
		}
	}
	if port != "" {
		digits := port[1:]
		if port[0] != ':' || digits == "" || len(digits) > 5 {
			return false
		}
		for i := 0; i < len(digits); i++ {
			if digits[i] < '0' || digits[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// domainOf returns the server name of a user or room ID ("@a:b" → "b"),
// or "" when id has no ":". Spec: appendices.md "Common Identifier Format".
func domainOf(id string) string {
	_, d, ok := strings.Cut(id, ":")
	if !ok {
		return ""
	}
	return d
}
