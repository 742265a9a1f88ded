package auth

import (
	"crypto/ed25519"
	"encoding/json"
	"sort"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// checkThirdPartyInvite is rule 4.4.1 (v12: 5.4.1): an invite that redeems
// an m.room.third_party_invite. content.third_party_invite.signed is a JSON
// object {"mxid", "token", "signatures"} signed (appendices.md "Signing
// JSON") by the identity server whose ed25519 keys the
// m.room.third_party_invite event lists in content.public_key and
// content.public_keys[].public_key (unpadded base64).
// Spec: client-server-api m.room.member (third_party_invite) and
// m.room.third_party_invite.
func (c *checker) checkThirdPartyInvite(target string, raw json.RawMessage) error {
	ev := c.ev
	// 4.4.1.1
	if c.membership(target) == Ban {
		return c.reject("4.4.1.1", "%s is banned", target)
	}
	tpi, err := object(raw)
	if err != nil {
		return c.reject("4.4.1.2", "third_party_invite: %v", err)
	}
	// 4.4.1.2
	signedRaw, ok := tpi["signed"]
	if !ok || !isObject(signedRaw) {
		return c.reject("4.4.1.2", "third_party_invite has no signed object")
	}
	signed, err := object(signedRaw)
	if err != nil {
		return c.reject("4.4.1.2", "third_party_invite.signed: %v", err)
	}
	// 4.4.1.3
	mxid, ok1 := str(signed["mxid"])
	token, ok2 := str(signed["token"])
	if !ok1 || !ok2 {
		return c.reject("4.4.1.3", "signed has no string mxid and token")
	}
	// 4.4.1.4
	if mxid != target {
		return c.reject("4.4.1.4", "signed.mxid %q is not the state_key %q", mxid, target)
	}
	// 4.4.1.5
	invite := c.state[StateKey{TypeThirdPartyInvite, token}]
	if invite == nil {
		return c.reject("4.4.1.5", "no m.room.third_party_invite with token %q", token)
	}
	// 4.4.1.6
	if invite.Sender() != ev.Sender() {
		return c.reject("4.4.1.6", "sender %s did not send the third-party invite (%s did)", ev.Sender(), invite.Sender())
	}
	// 4.4.1.7
	keys := thirdPartyKeys(invite)
	var sigs map[string]map[string]json.RawMessage
	if json.Unmarshal(signed["signatures"], &sigs) == nil {
		servers := make([]string, 0, len(sigs))
		for s := range sigs {
			servers = append(servers, s)
		}
		sort.Strings(servers)
		for _, server := range servers {
			for keyID := range sigs[server] {
				for _, pub := range keys {
					if event.VerifyJSON(signedRaw, server, keyID, pub) == nil {
						return nil
					}
				}
			}
		}
	}
	// 4.4.1.8
	return c.reject("4.4.1.8", "no signature in signed matches a public key of the third-party invite")
}

// thirdPartyKeys collects the well-formed ed25519 public keys of an
// m.room.third_party_invite event.
func thirdPartyKeys(invite *event.Event) []ed25519.PublicKey {
	content, err := object(invite.Content())
	if err != nil {
		return nil
	}
	var out []ed25519.PublicKey
	add := func(raw json.RawMessage) {
		s, ok := str(raw)
		if !ok {
			return
		}
		b, err := event.DecodeBase64(s)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return
		}
		out = append(out, ed25519.PublicKey(b))
	}
	add(content["public_key"])
	var list []map[string]json.RawMessage
	if raw, ok := content["public_keys"]; ok && json.Unmarshal(raw, &list) == nil {
		for _, k := range list {
			add(k["public_key"])
		}
	}
	return out
}
