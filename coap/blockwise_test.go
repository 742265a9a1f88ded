package coap

import (
	"bytes"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

func decodeAll(t *testing.T, dgs []Datagram) []*Wire {
	t.Helper()
	var ms []*Wire
	for _, d := range dgs {
		m := &Wire{}
		if err := Decode(d.Data, m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

func blockOf(t *testing.T, m *Wire, id message.OptionID) Block {
	t.Helper()
	b, ok, err := getBlock(m.Options, id)
	if err != nil || !ok {
		t.Fatalf("no %v option in %v (%v)", id, m, err)
	}
	return b
}

// TestBlock2SeveralInFlight: once block 0 announces Size2, the client asks
// for NSTART further blocks at once.
func TestBlock2SeveralInFlight(t *testing.T) {
	now := clock.Epoch
	cli, _ := NewEndpoint(Config{NStart: 4, BlockSize: 64})
	srv, _ := NewEndpoint(Config{BlockSize: 64})
	cli.Send(now, "srv", NewRequest(codes.GET, "/big", nil), SendOptions{})
	for _, d := range cli.Outgoing() {
		srv.Receive(now, "cli", d.Data)
	}
	ev := srv.Events()[0]
	body := bytes.Repeat([]byte("abcdefgh"), 100) // 800 bytes = 13 blocks of 64
	srv.Respond(now, ev.ID, &Message{Code: codes.Content, Payload: body})
	for _, d := range srv.Outgoing() {
		cli.Receive(now, "srv", d.Data)
	}
	reqs := decodeAll(t, cli.Outgoing())
	if len(reqs) != 4 {
		t.Fatalf("%d block requests in flight, want NSTART = 4", len(reqs))
	}
	for i, m := range reqs {
		if b := blockOf(t, m, message.Block2); b.Num != uint32(i+1) || b.SZX != 2 {
			t.Fatalf("request %d asks for block %+v", i, b)
		}
	}
}

// TestBlock1OutOfOrderReassembly feeds the server non-final blocks in a
// shuffled order; the body comes out whole. A final block with a gap is
// answered 4.08 (RFC 7959 §2.9.2).
func TestBlock1OutOfOrderReassembly(t *testing.T) {
	now := clock.Epoch
	srv, _ := NewEndpoint(Config{})
	body := bytes.Repeat([]byte("0123456789abcdef"), 4*4+1) // 4 blocks of 64 and 16 bytes
	send := func(mid int32, num uint32, more bool) *Wire {
		off := int(num) * 64
		end := min(off+64, len(body))
		m := &Wire{Type: CON, Code: codes.PUT, MessageID: mid, Token: []byte{byte(mid)},
			Options: message.Options{opt(message.URIPath, "up"), uintOption(message.Block1, Block{Num: num, More: more, SZX: 2}.Uint32())},
			Payload: body[off:end]}
		data, err := Encode(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Receive(now, "c", data); err != nil {
			t.Fatal(err)
		}
		out := decodeAll(t, srv.Outgoing())
		switch len(out) {
		case 0:
			return nil // delivered: the application answers
		case 1:
			return out[0]
		}
		t.Fatalf("%d answers to block %d", len(out), num)
		return nil
	}
	for i, num := range []uint32{2, 0, 3, 1} {
		r := send(int32(10+i), num, true)
		if r.Code != codes.Continue || blockOf(t, r, message.Block1) != (Block{Num: num, More: true, SZX: 2}) {
			t.Fatalf("block %d answered %v", num, r)
		}
	}
	if r := send(20, 4, false); r != nil { // the final block completes the body
		t.Fatalf("final block answered %v before the application", r)
	}
	evs := srv.Events()
	if len(evs) != 1 || !bytes.Equal(evs[0].Msg.Payload, body) {
		t.Fatalf("reassembled %d events, body ok = %v", len(evs), len(evs) == 1 && bytes.Equal(evs[0].Msg.Payload, body))
	}
	if err := srv.Respond(now, evs[0].ID, &Message{Code: codes.Changed}); err != nil {
		t.Fatal(err)
	}
	r := decodeAll(t, srv.Outgoing())[0]
	if r.Code != codes.Changed || blockOf(t, r, message.Block1) != (Block{Num: 4, SZX: 2}) {
		t.Fatalf("final answer %v", r)
	}
	// A new body whose final block arrives with a gap.
	send(30, 0, true)
	if r := send(31, 2, false); r == nil || r.Code != codes.RequestEntityIncomplete {
		t.Fatalf("final block after a gap answered %v", r)
	}
	if len(srv.Events()) != 0 {
		t.Fatal("incomplete body delivered")
	}
}

// TestBlock1TooLarge: a body beyond MaxBody is refused with 4.13 and Size1
// (RFC 7959 §2.9.3), and never buffered.
func TestBlock1TooLarge(t *testing.T) {
	now := clock.Epoch
	srv, _ := NewEndpoint(Config{MaxBody: 1000})
	m := &Wire{Type: CON, Code: codes.POST, MessageID: 1,
		Options: message.Options{uintOption(message.Block1, Block{Num: 1000, More: true, SZX: 6}.Uint32())},
		Payload: make([]byte, 1024)}
	data, _ := Encode(nil, m)
	srv.Receive(now, "c", data)
	r := decodeAll(t, srv.Outgoing())[0]
	if r.Code != codes.RequestEntityTooLarge {
		t.Fatalf("answer %v", r.Code)
	}
	if v, err := r.Options.GetUint32(message.Size1); err != nil || v != 1000 {
		t.Fatalf("Size1 %d, %v", v, err)
	}
}

// TestBlock1SmallerBlocksRequested: a server answering block 0 with a
// smaller SZX gets the rest at that size (RFC 7959 §2.3).
func TestBlock1SmallerBlocksRequested(t *testing.T) {
	now := clock.Epoch
	cli, _ := NewEndpoint(Config{BlockSize: 1024})
	body := make([]byte, 3000)
	for i := range body {
		body[i] = byte(i)
	}
	id, _ := cli.Send(now, "s", NewRequest(codes.PUT, "/up", body), SendOptions{})
	req := decodeAll(t, cli.Outgoing())[0]
	if b := blockOf(t, req, message.Block1); b != (Block{Num: 0, More: true, SZX: 6}) {
		t.Fatalf("first block %+v", b)
	}
	ack := &Wire{Type: ACK, Code: codes.Continue, MessageID: req.MessageID, Token: req.Token,
		Options: message.Options{uintOption(message.Block1, Block{Num: 0, More: true, SZX: 4}.Uint32())}}
	data, _ := Encode(nil, ack)
	cli.Receive(now, "s", data)
	next := decodeAll(t, cli.Outgoing())
	if len(next) != 1 {
		t.Fatalf("%d requests after renegotiation", len(next))
	}
	b := blockOf(t, next[0], message.Block1)
	if b != (Block{Num: 4, More: true, SZX: 4}) || !bytes.Equal(next[0].Payload, body[1024:1280]) {
		t.Fatalf("continued with block %+v and %d bytes", b, len(next[0].Payload))
	}
	if evs := cli.Events(); len(evs) != 0 {
		t.Fatalf("events %+v before the upload finished (id %d)", evs, id)
	}
}

// TestConfirmableNotificationReplaced: while a CON notification awaits its
// ACK, a newer one takes its place (RFC 7641 §4.5.2): one in flight, the
// newest content, the retransmission state kept.
func TestConfirmableNotificationReplaced(t *testing.T) {
	l := newTestLink(t, 11)
	cli := l.add("cli", Config{})
	srv := l.add("srv", Config{})
	srv.onEvent = func(n *testNode, ev Event) {
		if ev.Kind == RequestReceived {
			respondTo(n, ev, &Message{Code: codes.Content, Payload: []byte("0")})
		}
	}
	req := NewRequest(codes.GET, "/o", nil)
	req.Options = req.Options.Add(message.Option{ID: message.Observe})
	cli.ep.Send(l.clk.Now(), "srv", req, SendOptions{})
	cli.flush()
	l.run(100, func() bool { return len(cli.events) == 1 })
	var sent []string
	l.tamper = func(from, to Peer, data []byte) []byte {
		if from == "srv" {
			var m Wire
			Decode(data, &m)
			sent = append(sent, string(m.Payload))
			if len(sent) <= 2 {
				return nil // lose the first two
			}
		}
		return data
	}
	srv.ep.Notify(l.clk.Now(), "/o", &Message{Code: codes.Content, Payload: []byte("1")}, true)
	srv.flush()
	srv.ep.Notify(l.clk.Now(), "/o", &Message{Code: codes.Content, Payload: []byte("2")}, true)
	srv.flush()
	l.run(1000, func() bool { return len(cli.events) == 2 })
	// "1" went out once and was lost; "2" replaced it: no datagram
	// carried "1" again, and the client saw only "2".
	if sent[0] != "1" || sent[1] != "2" || string(cli.events[1].Msg.Payload) != "2" {
		t.Fatalf("sent %q, delivered %q", sent, cli.events[1].Msg.Payload)
	}
	for _, s := range sent[1:] {
		if s == "1" {
			t.Fatalf("the replaced notification was retransmitted: %q", sent)
		}
	}
}
