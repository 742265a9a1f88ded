package codec

import (
	"errors"
	"fmt"
	"strings"
)

// Path enums. MSC3079 "HTTP -> CoAP" replaces a client-server API path by a
// one-character code followed by the path parameters in order:
// /_matrix/client/r0/rooms/{roomId}/send/{eventType}/{txnId} is
// /9/{roomId}/{eventType}/{txnId}. Codes 0–9, A–Z, a–u are MSC3079 Appendix B
// version 1, exactly. Federation and key-server paths get the two-character
// codes "~0", "~1", …, which MSC3079 cannot collide with ("~" is an RFC 3986
// unreserved character, so no escaping is needed). Full paths always work.
//
// NOTSPEC: MSC3079 lists r0 paths, which the spec has since replaced by v3
// (client-server-api "API standards"). A client path is matched with r0 or
// v3 in the version segment and expands to v3; both address the same
// endpoint.

// pathEnums lists (code, template). Parameters are "{…}" segments.
var pathEnums = [...][2]string{
	{"0", "/_matrix/client/versions"},
	{"1", "/_matrix/client/v3/login"},
	{"2", "/_matrix/client/v3/capabilities"},
	{"3", "/_matrix/client/v3/logout"},
	{"4", "/_matrix/client/v3/register"},
	{"5", "/_matrix/client/v3/user/{userId}/filter"},
	{"6", "/_matrix/client/v3/user/{userId}/filter/{filterId}"},
	{"7", "/_matrix/client/v3/sync"},
	{"8", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"},
	{"9", "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"},
	{"A", "/_matrix/client/v3/rooms/{roomId}/event/{eventId}"},
	{"B", "/_matrix/client/v3/rooms/{roomId}/state"},
	{"C", "/_matrix/client/v3/rooms/{roomId}/members"},
	{"D", "/_matrix/client/v3/rooms/{roomId}/joined_members"},
	{"E", "/_matrix/client/v3/rooms/{roomId}/messages"},
	{"F", "/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"},
	{"G", "/_matrix/client/v3/createRoom"},
	{"H", "/_matrix/client/v3/directory/room/{roomAlias}"},
	{"I", "/_matrix/client/v3/joined_rooms"},
	{"J", "/_matrix/client/v3/rooms/{roomId}/invite"},
	{"K", "/_matrix/client/v3/rooms/{roomId}/join"},
	{"L", "/_matrix/client/v3/join/{roomIdOrAlias}"},
	{"M", "/_matrix/client/v3/rooms/{roomId}/leave"},
	{"N", "/_matrix/client/v3/rooms/{roomId}/forget"},
	{"O", "/_matrix/client/v3/rooms/{roomId}/kick"},
	{"P", "/_matrix/client/v3/rooms/{roomId}/ban"},
	{"Q", "/_matrix/client/v3/rooms/{roomId}/unban"},
	{"R", "/_matrix/client/v3/directory/list/room/{roomId}"},
	{"S", "/_matrix/client/v3/publicRooms"},
	{"T", "/_matrix/client/v3/user_directory/search"},
	{"U", "/_matrix/client/v3/profile/{userId}/displayname"},
	{"V", "/_matrix/client/v3/profile/{userId}/avatar_url"},
	{"W", "/_matrix/client/v3/profile/{userId}"},
	{"X", "/_matrix/client/v3/voip/turnServer"},
	{"Y", "/_matrix/client/v3/rooms/{roomId}/typing/{userId}"},
	{"Z", "/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"},
	{"a", "/_matrix/client/v3/rooms/{roomId}/read_markers"},
	{"b", "/_matrix/client/v3/presence/{userId}/status"},
	{"c", "/_matrix/client/v3/sendToDevice/{eventType}/{txnId}"},
	{"d", "/_matrix/client/v3/devices"},
	{"e", "/_matrix/client/v3/devices/{deviceId}"},
	{"f", "/_matrix/client/v3/delete_devices"},
	{"g", "/_matrix/client/v3/keys/upload"},
	{"h", "/_matrix/client/v3/keys/query"},
	{"i", "/_matrix/client/v3/keys/claim"},
	{"j", "/_matrix/client/v3/keys/changes"},
	{"k", "/_matrix/client/v3/pushers"},
	{"l", "/_matrix/client/v3/pushers/set"},
	{"m", "/_matrix/client/v3/notifications"},
	{"n", "/_matrix/client/v3/pushrules/"},
	{"o", "/_matrix/client/v3/search"},
	{"p", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"},
	{"q", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"},
	{"r", "/_matrix/client/v3/user/{userId}/account_data/{type}"},
	{"s", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"},
	{"t", "/_matrix/client/v3/rooms/{roomId}/context/{eventId}"},
	{"u", "/_matrix/client/v3/rooms/{roomId}/report/{eventId}"},
	// Mesh extension, version 1: server-server API and key server. Append only.
	{"~0", "/_matrix/federation/v1/send/{txnId}"},
	{"~1", "/_matrix/federation/v1/event/{eventId}"},
	{"~2", "/_matrix/federation/v1/state/{roomId}"},
	{"~3", "/_matrix/federation/v1/state_ids/{roomId}"},
	{"~4", "/_matrix/federation/v1/backfill/{roomId}"},
	{"~5", "/_matrix/federation/v1/get_missing_events/{roomId}"},
	{"~6", "/_matrix/federation/v1/event_auth/{roomId}/{eventId}"},
	{"~7", "/_matrix/federation/v1/make_join/{roomId}/{userId}"},
	{"~8", "/_matrix/federation/v2/send_join/{roomId}/{eventId}"},
	{"~9", "/_matrix/federation/v1/make_leave/{roomId}/{userId}"},
	{"~A", "/_matrix/federation/v2/send_leave/{roomId}/{eventId}"},
	{"~B", "/_matrix/federation/v2/invite/{roomId}/{eventId}"},
	{"~C", "/_matrix/federation/v1/make_knock/{roomId}/{userId}"},
	{"~D", "/_matrix/federation/v1/send_knock/{roomId}/{eventId}"},
	{"~E", "/_matrix/federation/v1/query/directory"},
	{"~F", "/_matrix/federation/v1/query/profile"},
	{"~G", "/_matrix/federation/v1/user/devices/{userId}"},
	{"~H", "/_matrix/federation/v1/user/keys/query"},
	{"~I", "/_matrix/federation/v1/user/keys/claim"},
	{"~J", "/_matrix/federation/v1/version"},
	{"~K", "/_matrix/federation/v1/publicRooms"},
	{"~L", "/_matrix/federation/v1/hierarchy/{roomId}"},
	{"~M", "/_matrix/federation/v1/timestamp_to_event/{roomId}"},
	{"~N", "/_matrix/federation/v1/openid/userinfo"},
	{"~O", "/_matrix/federation/v1/exchange_third_party_invite/{roomId}"},
	{"~P", "/_matrix/federation/v1/3pid/onbind"},
	{"~Q", "/_matrix/federation/v1/media/download/{mediaId}"},
	{"~R", "/_matrix/federation/v1/media/thumbnail/{mediaId}"},
	{"~S", "/_matrix/key/v2/server"},
	{"~T", "/_matrix/key/v2/query"},
	{"~U", "/_matrix/key/v2/query/{serverName}"},
	// Mesh extension: the content repository for low-bandwidth clients
	// (MSC3079 leaves media out; gateway/coap_front_media.go).
	{"~V", "/_matrix/client/v1/media/download/{serverName}/{mediaId}"},
	{"~W", "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"},
	{"~X", "/_matrix/media/v3/upload"},
}

// ErrUnknownPath: a short path whose code this table does not define, or
// with the wrong number of parameters.
var ErrUnknownPath = errors.New("unknown path enum")

type pathTemplate struct {
	code   string
	segs   []string // template segments after the leading "/"
	params int
}

var pathByCode = func() map[string]*pathTemplate {
	m := make(map[string]*pathTemplate, len(pathEnums))
	for _, pe := range pathEnums {
		t := &pathTemplate{code: pe[0], segs: strings.Split(pe[1][1:], "/")}
		for _, s := range t.segs {
			if isParam(s) {
				t.params++
			}
		}
		if _, dup := m[pe[0]]; dup {
			panic("codec: path code listed twice: " + pe[0]) // programming error in the table above
		}
		m[pe[0]] = t
	}
	return m
}()

func isParam(seg string) bool { return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' }

// CompressPath returns the short form of an API path (anything after "?" is
// kept as it is), or the path unchanged when no enum matches. Segments stay
// percent-encoded as given.
func CompressPath(p string) string {
	path, query, hasQuery := strings.Cut(p, "?")
	if !strings.HasPrefix(path, "/_matrix/") {
		return p
	}
	segs := strings.Split(path[1:], "/")
	for _, pe := range pathEnums {
		t := pathByCode[pe[0]]
		if params, ok := t.match(segs); ok {
			out := "/" + t.code
			for _, a := range params {
				out += "/" + a
			}
			if hasQuery {
				out += "?" + query
			}
			return out
		}
	}
	return p
}

func (t *pathTemplate) match(segs []string) ([]string, bool) {
	if len(segs) != len(t.segs) {
		return nil, false
	}
	var params []string
	for i, ts := range t.segs {
		switch {
		case isParam(ts):
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, segs[i])
		case i == 2 && ts == "v3" && segs[0] == "_matrix" && segs[1] == "client":
			if segs[i] != "v3" && segs[i] != "r0" {
				return nil, false
			}
		case segs[i] != ts:
			return nil, false
		}
	}
	return params, true
}

// ExpandPath returns the full API path for a short one; a path that already
// starts with "/_matrix/" is returned unchanged.
func ExpandPath(p string) (string, error) {
	if strings.HasPrefix(p, "/_matrix/") {
		return p, nil
	}
	path, query, hasQuery := strings.Cut(p, "?")
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("%w: %q does not start with /", ErrUnknownPath, p)
	}
	segs := strings.Split(path[1:], "/")
	t, ok := pathByCode[segs[0]]
	if !ok {
		return "", fmt.Errorf("%w: code %q", ErrUnknownPath, segs[0])
	}
	params := segs[1:]
	if len(params) != t.params {
		return "", fmt.Errorf("%w: code %q takes %d parameters, got %d", ErrUnknownPath, t.code, t.params, len(params))
	}
	var b strings.Builder
	for _, ts := range t.segs {
		b.WriteByte('/')
		if isParam(ts) {
			if params[0] == "" {
				return "", fmt.Errorf("%w: code %q: empty parameter", ErrUnknownPath, t.code)
			}
			b.WriteString(params[0])
			params = params[1:]
		} else {
			b.WriteString(ts)
		}
	}
	if hasQuery {
		b.WriteString("?" + query)
	}
	return b.String(), nil
}
