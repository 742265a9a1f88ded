// Package xmatrix signs and verifies federation requests with the X-Matrix
// authorization scheme.
//
// Spec: server-server-api "Authentication" → "Request Authentication".
// Every federation request carries a signature by the origin server's
// ed25519 key over the canonical JSON (appendices "Canonical JSON",
// "Signing JSON") of this object:
//
//	{
//	  "method":      "GET",                       // HTTP method, upper case
//	  "uri":         "/_matrix/federation/v1/...", // request target: path, "?" and query as sent
//	  "origin":      "origin.example",             // server names before delegation
//	  "destination": "dest.example",
//	  "content":     {...}                         // the JSON body; absent when there is none
//	}
//
// The signature travels in the Authorization header (RFC 7235 §2.1, with
// RFC 7230 §3.2.6 tokens and quoted strings):
//
//	Authorization: X-Matrix origin="origin.example",destination="dest.example",key="ed25519:k1",sig="<unpadded base64>"
//
// Parsing follows the spec's rules: the scheme and parameter names are case
// insensitive, parameters come in any order, values are tokens or quoted
// strings with backslash escapes, colons are accepted in unquoted values for
// older senders, and unknown parameters are ignored. Format writes what the
// spec asks senders to write: one space after the scheme, lower-case names,
// every value quoted.
//
// A request without a destination parameter is accepted (servers before
// spec v1.3 did not send it); the signed object then uses the receiving
// server's own name, as those servers signed it.
//
// Errors: ErrUnauthorized (HTTP 401, M_UNAUTHORIZED) for a missing or
// malformed header, an unsupported key algorithm, or a destination that is
// not the receiving server (the spec requires 401 for that); ErrForbidden
// (HTTP 401, M_FORBIDDEN) for a well-formed header whose key cannot be
// found or whose signature does not verify. Status maps an error to the
// HTTP status and errcode.
//
// The package is pure: it takes the method, request target, body, header
// and time as arguments, and looks keys up through a function it is given.
package xmatrix
