package homeserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// Request is one Matrix API request, as either front door (HTTP or CoAP)
// hands it to the node. It carries no transport details beyond the remote
// address used for rate limiting.
type Request struct {
	// Method is the HTTP method (GET, PUT, POST, DELETE).
	Method string
	// Path is the URL path exactly as sent, with percent-encoding intact
	// (for example "/_matrix/client/v3/rooms/%21a%3Ahs/send/m.room.message/1").
	// The router splits it on "/" before decoding, so a "/" encoded inside
	// a path parameter stays inside that parameter.
	Path string
	// Vars are the decoded path parameters, filled in by the router from the
	// route's pattern ("{roomId}" → Vars["roomId"]).
	Vars map[string]string
	// Query is the decoded query string.
	Query url.Values
	// Body is the request body (JSON for every endpoint in this package
	// except media uploads, whose body is the file).
	Body []byte
	// ContentType is the request's Content-Type; only media uploads read
	// it.
	ContentType string
	// AccessToken is the bearer token from the Authorization header or the
	// deprecated access_token query parameter; empty when none was sent.
	AccessToken string
	// RemoteIP is the client's address without the port, for per-IP rate
	// limiting; empty when unknown.
	RemoteIP string
	// Authorization is the raw Authorization header ("X-Matrix origin=…"
	// on federation requests); empty when none was sent.
	Authorization string
	// PeerServer is the server name the transport itself authenticated: a
	// Noise session bound to that server's signing key (DESIGN.md
	// "Identity and discovery"). AuthFederation routes accept it as the
	// origin without an X-Matrix header (one that is sent must name the
	// same origin). Front doors without such a session (HTTP) leave it
	// empty.
	PeerServer string
	// URI is the request target exactly as sent (path and query,
	// percent-encoding intact), which an X-Matrix signature covers. When
	// empty, Path plus the re-encoded Query stands in for it.
	URI string
}

// RequestURI is the request target an X-Matrix signature covers: URI when
// the front door filled it, else Path and the encoded Query.
func (r *Request) RequestURI() string {
	if r.URI != "" {
		return r.URI
	}
	if len(r.Query) == 0 {
		return r.Path
	}
	return r.Path + "?" + r.Query.Encode()
}

// Response is the node's answer to a Request. Body is marshalled as JSON by
// the front door (a json.RawMessage is sent as is), except a *RawBody
// (media.go), whose bytes are sent as they are with its headers.
type Response struct {
	Status int
	Body   any
}

// Error is a Matrix API error: an HTTP status and a JSON body
// {"errcode": Code, "error": Message, ...Extra}.
// Spec: client-server-api "Standard error response".
type Error struct {
	Status  int
	Code    string
	Message string
	// Extra holds additional top-level fields, such as retry_after_ms for
	// M_LIMIT_EXCEEDED or soft_logout for M_UNKNOWN_TOKEN.
	Extra map[string]any
}

// Errorf builds an *Error with a formatted message.
func Errorf(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// With returns e with one more top-level field in its JSON body.
func (e *Error) With(key string, value any) *Error {
	if e.Extra == nil {
		e.Extra = map[string]any{}
	}
	e.Extra[key] = value
	return e
}

// Body is the JSON body of the error response.
func (e *Error) Body() map[string]any {
	m := make(map[string]any, 2+len(e.Extra))
	for k, v := range e.Extra {
		m[k] = v
	}
	if e.Code != "" { // a bare UIA challenge has no errcode
		m["errcode"] = e.Code
		m["error"] = e.Message
	}
	return m
}

// Response is the error as a Response.
func (e *Error) Response() Response { return Response{Status: e.Status, Body: e.Body()} }

// Error codes used by this package. Spec: client-server-api "Common error
// codes" and "Other error codes".
const (
	ErrCodeForbidden       = "M_FORBIDDEN"
	ErrCodeUnknownToken    = "M_UNKNOWN_TOKEN"
	ErrCodeMissingToken    = "M_MISSING_TOKEN"
	ErrCodeBadJSON         = "M_BAD_JSON"
	ErrCodeNotJSON         = "M_NOT_JSON"
	ErrCodeNotFound        = "M_NOT_FOUND"
	ErrCodeLimitExceeded   = "M_LIMIT_EXCEEDED"
	ErrCodeUnrecognized    = "M_UNRECOGNIZED"
	ErrCodeUnknown         = "M_UNKNOWN"
	ErrCodeTooLarge        = "M_TOO_LARGE"
	ErrCodeUserInUse       = "M_USER_IN_USE"
	ErrCodeInvalidUsername = "M_INVALID_USERNAME"
	ErrCodeMissingParam    = "M_MISSING_PARAM"
	ErrCodeInvalidParam    = "M_INVALID_PARAM"
	ErrCodeUserDeactivated = "M_USER_DEACTIVATED"
	ErrCodeWeakPassword    = "M_WEAK_PASSWORD"
	ErrCodeUnauthorized    = "M_UNAUTHORIZED"
)

// AuthMode says how a route authenticates its caller.
type AuthMode int

const (
	// AuthNone: no access token needed; one that is sent is ignored.
	AuthNone AuthMode = iota
	// AuthUser: a valid access token is required (401 M_MISSING_TOKEN or
	// M_UNKNOWN_TOKEN otherwise); Call.UserID and Call.DeviceID are set.
	AuthUser
	// AuthOptional: a token is checked when present (an invalid one fails
	// as with AuthUser); without one the call goes ahead anonymously.
	AuthOptional
	// AuthFederation: the request must carry a valid X-Matrix signature
	// addressed to this server (server-server-api "Request
	// Authentication"); Call.Origin is set. Keys the node does not know
	// are fetched from the origin first, so the handler may run later.
	// Failures are 401 M_UNAUTHORIZED (missing, malformed, wrong
	// destination) or 401 M_FORBIDDEN (unknown or expired key, bad
	// signature).
	AuthFederation
)

// Route is one API endpoint.
type Route struct {
	// Method is the HTTP method.
	Method string
	// Pattern is the path with "{name}" segments for parameters, e.g.
	// "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}".
	// A parameter matches exactly one non-empty segment.
	Pattern string
	// Auth says how the caller is authenticated.
	Auth AuthMode
	// Unlimited exempts the route from rate limiting (used for /sync,
	// whose long-poll already paces the client, and for /versions).
	Unlimited bool
	// MaxBody, when positive, bounds the request body instead of
	// max_request_bytes (media uploads).
	MaxBody int64
	// Handle serves the call, inside the node loop. It must eventually
	// call c.Reply or c.Fail exactly once: at once, or later from inside the
	// loop (a waiter completed by an event or by Node.AfterFunc).
	Handle func(c *Call)
}

// Call is one request being served. It belongs to the node loop: every
// method must be called from inside the loop.
type Call struct {
	Req *Request
	// UserID and DeviceID identify the authenticated caller; empty when the
	// route does not authenticate (or AuthOptional without a token).
	UserID, DeviceID string
	// Admin reports whether the caller is a server admin.
	Admin bool
	// AccessToken is the token the caller authenticated with.
	AccessToken string
	// Origin is the server that signed the request, for AuthFederation
	// routes (its X-Matrix signature has been verified).
	Origin string

	node     *Node
	id       uint64 // key in Node.pending; 0 for calls never registered
	reply    func(Response)
	done     bool
	canceled bool
	onCancel []func()
}

// Seq is the call's dispatch sequence number: increasing in arrival order,
// for ordering waiters deterministically. 0 for a call refused before it
// was registered (node stopped).
func (c *Call) Seq() uint64 { return c.id }

// Node is the node serving the call.
func (c *Call) Node() *Node { return c.node }

// Reply answers the call with a JSON body. Only the first Reply (or Fail)
// counts; later ones are ignored, so a waiter racing a timer is harmless.
func (c *Call) Reply(status int, body any) {
	if c.done {
		return
	}
	c.done = true
	c.onCancel = nil
	c.node.finish(c)
	if c.canceled {
		return // the client has gone; nobody is listening
	}
	c.reply(Response{Status: status, Body: body})
}

// Fail answers the call with an error: an *Error (anywhere in the chain) is
// sent as is; anything else is logged and sent as 500 M_UNKNOWN, without
// leaking internal details to the client.
func (c *Call) Fail(err error) {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		c.Reply(apiErr.Status, apiErr.Body())
		return
	}
	c.node.log.Error("request failed", "method", c.Req.Method, "path", c.Req.Path, "err", err)
	c.Reply(500, (&Error{Status: 500, Code: ErrCodeUnknown, Message: "internal server error"}).Body())
}

// Done reports whether the call has been answered or cancelled.
func (c *Call) Done() bool { return c.done || c.canceled }

// OnCancel registers f to run (inside the loop) if the call is cancelled
// before it is answered: the client went away or the node is shutting down.
// Waiters use it to remove themselves.
func (c *Call) OnCancel(f func()) {
	if c.Done() {
		return
	}
	c.onCancel = append(c.onCancel, f)
}

// Cancel abandons the call: its OnCancel hooks run and any later Reply is
// dropped. It is a no-op once the call is answered. Front doors call it
// (inside the loop) when the client disconnects.
func (c *Call) Cancel() {
	if c.Done() {
		return
	}
	c.canceled = true
	hooks := c.onCancel
	c.onCancel = nil
	for _, f := range hooks {
		f()
	}
	c.node.finish(c)
}

// DecodeJSON decodes the request body into dst. An empty body decodes as
// {}. Not JSON → 400 M_NOT_JSON; JSON of the wrong shape (not an object,
// wrong field types) → 400 M_BAD_JSON. The returned error is an *Error, so
// handlers can pass it straight to Fail.
func (c *Call) DecodeJSON(dst any) error {
	body := bytes.TrimSpace(c.Req.Body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		return Errorf(400, ErrCodeNotJSON, "request body is not valid JSON")
	}
	if body[0] != '{' {
		return Errorf(400, ErrCodeBadJSON, "request body must be a JSON object")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return Errorf(400, ErrCodeBadJSON, "bad request body: %v", err)
	}
	return nil
}
