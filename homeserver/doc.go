// Package homeserver is an mxmesh node: the Matrix Client-Server (and,
// later, federation) API defined once, served by whichever front door
// (HTTP in gateway, CoAP/Noise) translates requests into it.
//
// # Runtime model
//
// A Node owns all of its state and is driven from one loop (DESIGN.md "The
// runtime model"). Nothing in a Node is locked; every call into it comes
// from that loop:
//
//   - Real mode: a Loop goroutine runs posted functions in order. Front
//     doors call Node.Handle, which posts Dispatch into the loop and waits
//     for the Response (or for the request context to end, which cancels
//     the Call inside the loop). Timers from Node.AfterFunc post their
//     callbacks into the loop.
//   - Tests and the simulator: one driver calls Node.Dispatch directly and
//     moves a clock.Fake; timer callbacks run inside Fake.Advance.
//
// The node reads time only from its clock.Clock and randomness only from
// its RNG (access tokens are 256 bits from it), so a seeded run is
// reproducible byte for byte.
//
// # Request flow
//
// Dispatch(req, reply) → size check (413 M_TOO_LARGE beyond
// max_request_bytes) → route match on the percent-encoded path split at
// "/" (404 M_UNRECOGNIZED for an unknown path, 405 M_UNRECOGNIZED for a
// known path with another method) → access token (401 M_MISSING_TOKEN /
// M_UNKNOWN_TOKEN) → token bucket, per user for authenticated calls and
// per remote IP for the rest, failed token checks included (429
// M_LIMIT_EXCEEDED with retry_after_ms; routes marked Unlimited and admins
// are exempt) → Route.Handle. The handler answers
// with Call.Reply or Call.Fail, at once or later from inside the loop
// (long-poll waiters register Call.OnCancel to clean up if the client
// leaves first). Errors follow client-server-api "Standard error response":
// {"errcode": "M_…", "error": "…"}.
//
// # Accounts
//
// Spec sections implemented here (client-server-api): "Account
// registration and management" (/register with m.login.dummy user-
// interactive auth, /register/available, password change, deactivation),
// "Login" (m.login.password with m.id.user identifiers, logout,
// logout/all, whoami), "Device management" (list/get/update/delete with
// m.login.password UIA), "User-Interactive Authentication API", and
// Synapse's shared-secret registration (/_synapse/admin/v1/register:
// HMAC-SHA1 over nonce NUL user NUL password NUL admin|notadmin, keyed by
// the configured secret).
//
// Passwords are bcrypt hashes; access tokens are stored as their SHA-256.
// Each device has exactly one access token.
//
// NOTSPEC: refresh tokens are not issued (refresh_token is never returned);
// access tokens do not expire.
package homeserver
