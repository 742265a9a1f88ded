package noise

import (
	"encoding/base64"
	"fmt"
)

// ClientPrefix starts the name a client claims in its identity binding
// and every client peer name. Matrix server names never contain "~"
// (appendices "Server Name"), so a client cannot collide with a server.
const ClientPrefix = "~"

// ClientName is the peer name an Endpoint with Config.AcceptClients gives
// the client whose Noise static public key is key: "~" and the key in
// unpadded URL-safe base64 (RFC 4648 §5), 44 characters.
func ClientName(key []byte) string {
	return ClientPrefix + base64.RawURLEncoding.EncodeToString(key)
}

// addClient makes a peer for an unpinned initiator (Config.AcceptClients),
// forgetting the least recently heard client when MaxClients are kept.
func (e *Endpoint[A]) addClient(static [32]byte) (*peer[A], error) {
	if e.clients >= e.cfg.MaxClients {
		var oldest *peer[A]
		for _, p := range e.ordered { // name order: ties break the same way every run
			if p.client && p.init == nil && (oldest == nil || p.heard.Before(oldest.heard)) {
				oldest = p
			}
		}
		if oldest == nil {
			return nil, fmt.Errorf("%d clients, none idle: %w", e.clients, ErrRateLimited)
		}
		e.RemovePeer(oldest.name)
	}
	p := &peer[A]{name: ClientName(static[:]), client: true}
	e.insertPeer(p)
	e.learnStatic(p, static)
	e.clients++
	return p, nil
}
