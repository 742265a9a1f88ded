package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

const profileURI = "/_matrix/federation/v1/query/profile?user_id=%40alice%3Aa.mesh&field=displayname"

// memDo sends req from node i to dest through node i's MeshRemote and runs
// virtual time until it completes.
func (w *memMesh) memDo(t *testing.T, i int, dest string, req homeserver.OutboundRequest) (homeserver.OutboundResponse, error) {
	t.Helper()
	var resp homeserver.OutboundResponse
	var err error
	done := false
	w.nodes[i].mesh.Do(dest, req, func(r homeserver.OutboundResponse, e error) { resp, err, done = r, e, true })
	limit := w.clk.Now().Add(time.Hour)
	for !done {
		if !w.clk.RunNext() || w.clk.Now().After(limit) {
			t.Fatalf("%s %s from node %d: never completed", req.Method, req.URI, i)
		}
	}
	return resp, err
}

// TestMeshFederationAuth: a pinned server's request is authenticated by
// its Noise session alone (no X-Matrix); a server that is not pinned is
// refused: by Noise when trust on first use is off, and by the federation
// API (401) when it is on, since a key learned on first use proves no
// Matrix identity.
func TestMeshFederationAuth(t *testing.T) {
	names := []string{"a.mesh", "b.mesh", "c.mesh"}
	for _, tofu := range []bool{false, true} {
		// a and b pin each other; c pins a, a does not pin c.
		w := newMemMesh(t, 3, names, memMeshOptions{
			pins: func(i, j int) bool { return i != 2 && j != 2 || i == 2 && j == 0 },
			tofu: func(i int) bool { return tofu && i == 0 },
		})
		meshRegister(t, w, 0, "alice")
		req := homeserver.OutboundRequest{Method: "GET", URI: profileURI}
		resp, err := w.memDo(t, 1, "a.mesh", req)
		if err != nil || resp.Status != 200 {
			t.Fatalf("pinned b.mesh: %d %s, %v", resp.Status, resp.Body, err)
		}
		doorBefore := w.nodes[0].door
		resp, err = w.memDo(t, 2, "a.mesh", req)
		var re *homeserver.RemoteError
		switch {
		case !tofu:
			if err == nil || errors.As(err, &re) {
				t.Fatalf("unpinned c.mesh without TOFU: %d %s, %v; want a transport failure", resp.Status, resp.Body, err)
			}
			if w.nodes[0].door != doorBefore {
				t.Fatal("a request of the unpinned server reached the front door")
			}
			if st := w.nodes[0].sim.node.nz.Stats(); st.DropRefused == 0 {
				t.Fatalf("a.mesh refused no handshake: %+v", st)
			}
		default:
			if !errors.As(err, &re) || re.Status != 401 {
				t.Fatalf("c.mesh learned on first use: %d %s, %v; want 401", resp.Status, resp.Body, err)
			}
		}
	}
}

// TestMeshClientCannotUseFederation: a low-bandwidth client's Noise
// session ("~" identity) never carries a server identity: federation
// routes answer it 401 over real UDP, while the same request from the
// pinned peer succeeds.
func TestMeshClientCannotUseFederation(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	w := newUDPMesh(t, names, func(i int, c *CoAPFrontDoorListenConfig) { c.AcceptClients = true })
	meshRegister(t, w, 0, "alice")
	a := w.nodes[0]
	c, err := DialCoAP(CoAPClientConfig{Server: a.udp.Addr(), ServerName: a.id.name,
		ServerKey: noise.NewKeyToken(a.id.name, a.id.kp.Public, a.id.key.Key), Format: ContentFormatMeshFrame})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, uri := range []string{profileURI, "/_matrix/federation/v1/send/t1"} {
		method, body := "GET", []byte(nil)
		if uri != profileURI {
			method, body = "PUT", []byte(`{"origin":"b.mesh","origin_server_ts":1,"pdus":[],"edus":[]}`)
		}
		r, err := c.Do(ctx, method, uri, body)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != 401 {
			t.Errorf("client %s %s: %d %s, want 401", method, uri, r.Status, r.JSON)
		}
	}
	ch := make(chan error, 1)
	w.nodes[1].mesh.Do("a.mesh", homeserver.OutboundRequest{Method: "GET", URI: profileURI}, func(_ homeserver.OutboundResponse, err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatalf("pinned server: %v", err)
	}
}

// skewedContext is a sender's view that disagrees with the receiver's:
// every known event looks one millisecond newer, so packed timestamps
// rebuild wrong on the receiver.
type skewedContext struct{ codec.RoomContext }

func (c skewedContext) EventInfo(id string) (int64, int64, bool) {
	d, ts, ok := c.RoomContext.EventInfo(id)
	return d, ts + 1, ok
}

// TestMeshPackingStateMismatch: when the sender's room state differs from
// the receiver's, the receiver answers 4.09 ORG.MXMESH.STATE_MISMATCH and
// the sender resends the transaction unpacked; nothing is lost.
func TestMeshPackingStateMismatch(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	w := newMemMesh(t, 5, names, memMeshOptions{contexts: func(n *homeserver.Node) RoomContexts {
		return func(roomID string) (codec.RoomContext, error) {
			c, err := n.MeshRoomContext(roomID)
			if err != nil {
				return nil, err
			}
			return skewedContext{c}, nil
		}
	}})
	res := runMeshScenario(t, w, names)
	if res.stats.Packed == 0 || res.stats.Mismatched != res.stats.Packed {
		t.Fatalf("stats %+v: want every packed transaction refused and resent", res.stats)
	}
}
