package homeserver

import "github.com/mxmesh/mxmesh/homeserver/event"

// specVersions are the Client-Server API versions this server speaks.
// Spec: client-server-api "GET /_matrix/client/versions".
//
// v1.11 brought authenticated media (media*.go). Of its other additions,
// unsigned.membership on events is left out (the spec lets servers omit
// it) and the terms-of-service registration stage is not offered.
//
// NOTSPEC: GET /_matrix/client/v1/media/preview_url (new in v1.11) is not
// served (404 M_UNRECOGNIZED): previews would make the node fetch
// arbitrary web pages, which a mesh node cannot and should not do; clients
// show no preview. v1.12 and later are not advertised.
var specVersions = []string{"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"}

func infoRoutes(n *Node) ([]Route, error) {
	return []Route{
		{Method: "GET", Pattern: "/_matrix/client/versions", Auth: AuthOptional, Unlimited: true, Handle: handleVersions},
		{Method: "GET", Pattern: "/_matrix/client/v3/capabilities", Auth: AuthUser, Handle: handleCapabilities},
	}, nil
}

func handleVersions(c *Call) {
	body := map[string]any{
		"versions":          specVersions,
		"unstable_features": map[string]bool{ssFeature: true},
	}
	if c.Node().Config().CoAPAddr != "" {
		body["m.low_bandwidth"] = lowBandwidthFeatures
	}
	c.Reply(200, body)
}

// lowBandwidthFeatures is MSC3079's "m.low_bandwidth" object in /versions,
// advertised when the CoAP front door runs: MSC3079's integer-key table
// (version 1) and CoAP path codes (version 1), and Observe on /sync.
//
// NOTSPEC: MSC3079's "dtls" port is left out: the CoAP listener is secured
// with Noise, not DTLS, so a DTLS client could not use it.
var lowBandwidthFeatures = map[string]int{
	"cbor_enum_version": 1,
	"coap_enum_version": 1,
	"observe":           1,
}

// handleCapabilities: spec client-server-api "Capabilities negotiation".
func handleCapabilities(c *Call) {
	available := map[string]string{}
	for _, v := range event.SupportedVersions() {
		available[v.ID] = "stable"
	}
	c.Reply(200, map[string]any{"capabilities": map[string]any{
		"m.room_versions": map[string]any{
			"default":   event.DefaultRoomVersion,
			"available": available,
		},
		"m.change_password": map[string]bool{"enabled": true},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
		"m.get_login_token": map[string]bool{"enabled": false},
	}})
}
