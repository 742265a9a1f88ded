// Package keys publishes, verifies and caches Matrix server signing keys.
//
// Spec: server-server-api "Retrieving server keys": "Publishing Keys"
// (GET /_matrix/key/v2/server) and "Querying Keys Through Another Server"
// (the notary API, GET and POST /_matrix/key/v2/query); the response
// schema is data/api/server-server/definitions/keys.yaml; signatures follow
// appendices "Signing JSON".
//
// A key response is a signed JSON object:
//
//	{
//	  "server_name":     "example.org",
//	  "valid_until_ts":  1700000000000,             // ms; refresh after this
//	  "verify_keys":     {"ed25519:a_Xy": {"key": "<unpadded base64, 32 B>"}},
//	  "old_verify_keys": {"ed25519:0ld": {"key": "...", "expired_ts": 1600000000000}},
//	  "net.mxmesh.noise_key": {                      // mxmesh extension, see below
//	    "key": "<unpadded base64 X25519 public key, 32 B>",
//	    "signatures": {"ed25519:a_Xy": "<unpadded base64 ed25519 signature>"}
//	  },
//	  "signatures": {"example.org": {"ed25519:a_Xy": "..."}}
//	}
//
// Every key in verify_keys signs the object (Parse checks each one); keys
// in old_verify_keys only verify events signed before expired_ts and never
// requests. A receiver uses the lesser of valid_until_ts and seven days after
// it fetched the keys (MaxValidity).
//
// The "net.mxmesh.noise_key" field publishes the server's Noise static
// public key (DESIGN.md "Identity and discovery"). Its signatures are
// binding signatures made with noise.SignBinding by each current signing
// key, over the server name and the Noise key, so the binding can be checked
// on its own (in a Noise handshake payload, in `mxmesh peer show`) without
// the rest of the response. Servers that do not know the field ignore it,
// as the spec lets them ignore unknown fields.
//
// The notary response ("server_keys") is a list of such objects as the
// queried servers signed them, each with the notary's signature added.
//
// Cache stores fetched keys through a Store interface (MemoryStore here; the
// SQLite table lives with the homeserver's store) and answers "may key K of
// server S sign a request / an event at time T?", taking T as an argument.
//
// The package is pure: no network, no clock; time is always an argument.
package keys
