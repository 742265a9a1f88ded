package coap

import (
	"bytes"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

// tagOf returns a request's Request-Tag values, "-" when it has none.
func tagOf(m *Wire) string {
	var s []string
	for _, o := range m.Options {
		if o.ID == message.RequestTag {
			s = append(s, string(o.Value))
		}
	}
	if len(s) == 0 {
		return "-"
	}
	return "[" + strings.Join(s, ",") + "]"
}

func TestRequestTagValues(t *testing.T) {
	for _, c := range []struct {
		i       uint64
		present bool
		v       []byte
	}{
		{0, false, nil}, {1, true, []byte{}}, {2, true, []byte{0}}, {257, true, []byte{0xff}},
		{258, true, []byte{0, 0}}, {258 + 65535, true, []byte{0xff, 0xff}}, {258 + 65536, true, []byte{0, 0, 0}},
	} {
		present, v := requestTag(c.i)
		if present != c.present || !bytes.Equal(v, c.v) || (present && v == nil) {
			t.Errorf("requestTag(%d) = %v %x, want %v %x", c.i, present, v, c.present, c.v)
		}
	}
	// The option number's bits (RFC 7252 §5.4.6): elective, safe to
	// forward, part of the cache key (RFC 9175 §3.2.1).
	if n := message.RequestTag; n != 292 || n&1 != 0 || n&2 != 0 || n&0x1e == 0x1c {
		t.Fatalf("Request-Tag option %d has the wrong properties", n)
	}
}

// TestRequestTagClient: each upload to a peer carries its own tag in every
// block, concurrent and back-to-back uploads to the same resource get
// different tags, and a tag comes back into use EXCHANGE_LIFETIME after
// its upload ended.
func TestRequestTagClient(t *testing.T) {
	now := clock.Epoch
	cli, _ := NewEndpoint(Config{BlockSize: 16})
	body := bytes.Repeat([]byte("0123456789abcdef"), 3) // 3 blocks
	// serve answers every request of the client as a server would: 2.31
	// for a non-final block, 2.04 for the last; it returns the tags seen.
	serve := func() (tags []string) {
		for {
			out := decodeAll(t, cli.Outgoing())
			if len(out) == 0 {
				return tags
			}
			for _, m := range out {
				tags = append(tags, tagOf(m))
				b := blockOf(t, m, message.Block1)
				ack := &Wire{Type: ACK, Code: codes.Changed, MessageID: m.MessageID, Token: m.Token}
				if b.More {
					ack.Code = codes.Continue
				}
				ack.Options = message.Options{uintOption(message.Block1, b.Uint32())}
				data, _ := Encode(nil, ack)
				if err := cli.Receive(now, "s", data); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	put := func() uint64 {
		req := NewRequest(codes.PUT, "/up", body)
		// A tag set by the application is the engine's to choose.
		req.Options = req.Options.Add(message.Option{ID: message.RequestTag, Value: []byte("app")})
		id, err := cli.Send(now, "s", req, SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	put()
	put() // concurrent with the first
	tags := serve()
	if len(tags) != 6 {
		t.Fatalf("%d blocks sent, want 6: %q", len(tags), tags)
	}
	count := map[string]int{}
	for _, tag := range tags {
		count[tag]++
	}
	if count["-"] != 3 || count["[]"] != 3 {
		t.Fatalf("tags of two concurrent uploads: %q, want three absent and three empty", tags)
	}
	for _, ev := range cli.Events() {
		if ev.Kind != ResponseReceived || ev.Msg.Code != codes.Changed {
			t.Fatalf("event %+v", ev)
		}
	}
	put() // both ended just now: a third upload takes a third tag
	if tags := serve(); len(tags) != 3 || tags[0] != "[\x00]" || tags[1] != tags[0] || tags[2] != tags[0] {
		t.Fatalf("back-to-back upload tagged %q, want a 1-byte tag in every block", tags)
	}
	now = now.Add(cli.Params().ExchangeLifetime)
	cli.Tick(now)
	put()
	if tags := serve(); len(tags) != 3 || tags[0] != "-" {
		t.Fatalf("upload after EXCHANGE_LIFETIME tagged %q, want the absent tag again", tags)
	}
	// A body that fits one message carries no tag.
	cli.Send(now, "s", NewRequest(codes.PUT, "/up", []byte("small")), SendOptions{})
	if out := decodeAll(t, cli.Outgoing()); len(out) != 1 || tagOf(out[0]) != "-" {
		t.Fatalf("single-message request tagged %q", tagOf(out[0]))
	}
}

// TestRequestTagServer: blocks of two uploads to the same resource with
// different tags (one absent) are reassembled apart; a block never joins
// a transfer with another tag, and the application does not see the tag.
func TestRequestTagServer(t *testing.T) {
	now := clock.Epoch
	srv, _ := NewEndpoint(Config{})
	mid := int32(0)
	send := func(tag []byte, num uint32, more bool, payload []byte) *Wire {
		mid++
		m := &Wire{Type: CON, Code: codes.PUT, MessageID: mid, Token: []byte{byte(mid)},
			Options: message.Options{opt(message.URIPath, "up"), uintOption(message.Block1, Block{Num: num, More: more, SZX: 0}.Uint32())},
			Payload: payload}
		if tag != nil {
			m.Options = m.Options.Add(message.Option{ID: message.RequestTag, Value: tag})
		}
		data, err := Encode(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Receive(now, "c", data); err != nil {
			t.Fatal(err)
		}
		out := decodeAll(t, srv.Outgoing())
		if len(out) == 0 {
			return nil
		}
		return out[0]
	}
	a := bytes.Repeat([]byte("A"), 16)
	b := bytes.Repeat([]byte("B"), 16)
	send(nil, 0, true, a)
	send([]byte{}, 0, true, b) // the empty tag is not the absent one
	send([]byte{7}, 1, true, b)
	// The final block of the untagged body: block 1 with tag 7 is not its.
	if r := send(nil, 2, false, []byte("a")); r == nil || r.Code != codes.RequestEntityIncomplete {
		t.Fatalf("final block over a gap answered %v", r)
	}
	if r := send([]byte{}, 1, false, []byte("b")); r != nil {
		t.Fatalf("final block of the empty-tagged body answered %v before the application", r)
	}
	evs := srv.Events()
	if len(evs) != 1 || !bytes.Equal(evs[0].Msg.Payload, append(b[:16:16], 'b')) {
		t.Fatalf("events %+v", evs)
	}
	if _, ok := optionValue(evs[0].Msg.Options, message.RequestTag); ok {
		t.Fatal("the application saw the Request-Tag")
	}
	srv.Respond(now, evs[0].ID, &Message{Code: codes.Changed})
	if out := decodeAll(t, srv.Outgoing()); len(out) != 1 || tagOf(out[0]) != "-" {
		t.Fatal("response carries a Request-Tag (RFC 9175 §3.4 forbids it)")
	}
	// The untagged body completes with its own blocks only.
	send(nil, 1, true, a)
	if r := send(nil, 2, false, []byte("a")); r != nil {
		t.Fatalf("final untagged block answered %v", r)
	}
	if evs := srv.Events(); len(evs) != 1 || !bytes.Equal(evs[0].Msg.Payload, append(bytes.Repeat([]byte("A"), 32), 'a')) {
		t.Fatalf("untagged body: %+v", evs)
	}
}

// TestRequestTagRoundTrip: two concurrent uploads to one resource between
// two endpoints arrive whole and apart.
func TestRequestTagRoundTrip(t *testing.T) {
	l := newTestLink(t, 5)
	l.loss, l.reorder = 0.2, 0.3
	cfg := Config{NStart: 4, BlockSize: 64, MaxRetransmit: 10}
	cli := l.add("cli", cfg)
	srv := l.add("srv", cfg)
	srv.onEvent = echoServer
	one := bytes.Repeat([]byte("1"), 1000)
	two := bytes.Repeat([]byte("2"), 1000)
	id1, _ := cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.POST, "/up", one), SendOptions{})
	id2, _ := cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.POST, "/up", two), SendOptions{})
	cli.flush()
	l.run(100_000, func() bool { return len(cli.events) == 2 })
	for _, ev := range cli.events {
		want := one
		if ev.ID == id2 {
			want = two
		} else if ev.ID != id1 {
			t.Fatalf("event %+v", ev)
		}
		if ev.Kind != ResponseReceived || !bytes.Equal(ev.Msg.Payload, append([]byte("/up:"), want...)) {
			t.Fatalf("upload %d: %v %v, %d bytes", ev.ID, ev.Kind, ev.Err, len(ev.Msg.Payload))
		}
	}
}
