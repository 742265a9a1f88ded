package gateway

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/mxmesh/mxmesh/coap"
)

// bigBody is a printable 12,000-byte body: more than 10 KB, so transfers of
// it are block-wise at any block size.
var bigBody = func() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 12000; i++ {
		fmt.Fprintf(&b, "line %05d of the block-wise test body\n", i)
	}
	return b.Bytes()[:12000]
}()

// ourServer starts our CoAP front door with /hello, /big, /echo and an
// observable /obs.
func ourServer(t *testing.T) *UDPServer {
	t.Helper()
	hello := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Content, Payload: []byte("hello " + r.Peer)})
	})
	big := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		// Answer later, from another goroutine, as the homeserver will.
		go reply(coap.Message{Code: codes.Content, Payload: bigBody})
	})
	echo := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Changed, Payload: r.Msg.Payload})
	})
	obs := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Content, Payload: []byte("n0")})
	})
	s, err := ListenCoAPUDP(UDPConfig{Addr: "127.0.0.1:0"},
		CoAPResource{Path: "/hello", Attrs: `rt="test.hello"`, Handler: hello},
		CoAPResource{Path: "/big", Attrs: `rt="test.big";sz=12000`, Handler: big},
		CoAPResource{Path: "/echo", Handler: echo},
		CoAPResource{Path: "/obs", Attrs: `rt="test.obs";obs`, Handler: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// notifyLoop pushes a notification to /obs every interval until stop.
func notifyLoop(s *UDPServer, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			s.Notify(context.Background(), "/obs", coap.Message{Code: codes.Content, Payload: fmt.Appendf(nil, "n%d", i)}, i%3 == 0)
		}
	}()
	return func() { close(done); wg.Wait() }
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestInteropGoCoapClient: go-coap v3's client against our server.
func TestInteropGoCoapClient(t *testing.T) {
	s := ourServer(t)
	ctx := testCtx(t)
	co, err := udp.Dial(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()

	resp, err := co.Get(ctx, WellKnownCore)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := resp.ReadBody()
	want := `</big>;rt="test.big";sz=12000,</echo>,</hello>;rt="test.hello",</obs>;rt="test.obs";obs`
	if string(body) != want {
		t.Fatalf("/.well-known/core = %q, want %q", body, want)
	}
	if cf, err := resp.ContentFormat(); err != nil || cf != message.AppLinkFormat {
		t.Fatalf("content format %v, %v", cf, err)
	}

	resp, err = co.Get(ctx, "/big")
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := resp.ReadBody(); !bytes.Equal(body, bigBody) {
		t.Fatalf("GET /big: %d bytes, want the %d-byte body", len(body), len(bigBody))
	}

	resp, err = co.Post(ctx, "/echo", message.TextPlain, bytes.NewReader(bigBody))
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := resp.ReadBody(); resp.Code() != codes.Changed || !bytes.Equal(body, bigBody) {
		t.Fatalf("POST /echo: %v with %d bytes", resp.Code(), len(body))
	}

	got := make(chan string, 16)
	ob, err := co.Observe(ctx, "/obs", func(m *pool.Message) {
		b, _ := m.ReadBody()
		select {
		case got <- string(b):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := notifyLoop(s, 50*time.Millisecond)
	defer stop()
	seen := map[string]bool{}
	for len(seen) < 4 {
		select {
		case v := <-got:
			seen[v] = true
		case <-ctx.Done():
			t.Fatalf("observe: only %v arrived", seen)
		}
	}
	if !seen["n0"] {
		t.Fatalf("first observe answer missing: %v", seen)
	}
	ob.Cancel(ctx)
}

// goCoapServer starts go-coap v3's server with /small, /big, /echo and an
// observable /obs that notifies every 50 ms.
func goCoapServer(t *testing.T) string {
	t.Helper()
	r := mux.NewRouter()
	r.Handle("/small", mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("small")))
	}))
	r.Handle("/big", mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader(bigBody))
	}))
	r.Handle("/echo", mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		b, _ := req.ReadBody()
		w.SetResponse(codes.Changed, message.TextPlain, bytes.NewReader(b))
	}))
	var seq atomic.Uint32
	r.Handle("/obs", mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		obs, err := req.Options().Observe()
		if err != nil || obs != 0 {
			w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("plain")))
			return
		}
		cc, token := w.Conn(), append([]byte(nil), req.Token()...)
		go func() {
			for i := 1; i <= 20; i++ {
				time.Sleep(50 * time.Millisecond)
				m := cc.AcquireMessage(cc.Context())
				m.SetCode(codes.Content)
				m.SetToken(token)
				m.SetObserve(seq.Add(1) + 1)
				m.SetBody(bytes.NewReader(fmt.Appendf(nil, "g%d", i)))
				err := cc.WriteMessage(m)
				cc.ReleaseMessage(m)
				if err != nil {
					return
				}
			}
		}()
		w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("g0")))
		w.Message().SetObserve(1)
	}))
	l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := udp.NewServer(options.WithMux(r))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(); l.Close() })
	return l.LocalAddr().String()
}

// TestInteropGoCoapServer: our client against go-coap v3's server.
func TestInteropGoCoapServer(t *testing.T) {
	addr := goCoapServer(t)
	s := ourServer(t)
	ctx := testCtx(t)

	resp, err := s.Do(ctx, addr, coap.NewRequest(codes.GET, "/small", nil))
	if err != nil || resp.Code != codes.Content || string(resp.Payload) != "small" {
		t.Fatalf("GET /small: %v %q %v", resp.Code, resp.Payload, err)
	}
	resp, err = s.Do(ctx, addr, coap.NewRequest(codes.GET, "/big", nil))
	if err != nil || !bytes.Equal(resp.Payload, bigBody) {
		t.Fatalf("GET /big: %d bytes, %v", len(resp.Payload), err)
	}
	resp, err = s.Do(ctx, addr, coap.NewRequest(codes.POST, "/echo", bigBody))
	if err != nil || resp.Code != codes.Changed || !bytes.Equal(resp.Payload, bigBody) {
		t.Fatalf("POST /echo: %v with %d bytes, %v", resp.Code, len(resp.Payload), err)
	}

	got := make(chan string, 32)
	first, cancel, err := s.Observe(ctx, addr, coap.NewRequest(codes.GET, "/obs", nil), func(m coap.Message) {
		select {
		case got <- string(m.Payload):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if string(first.Payload) != "g0" {
		t.Fatalf("observe answer %q", first.Payload)
	}
	for n := 0; n < 3; n++ {
		select {
		case v := <-got:
			if !strings.HasPrefix(v, "g") {
				t.Fatalf("notification %q", v)
			}
		case <-ctx.Done():
			t.Fatalf("only %d notifications", n)
		}
	}
}

// libcoapClient finds coap-client-notls (apt package libcoap3-bin). It is
// skipped only when absent outside CI.
func libcoapClient(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("coap-client-notls")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("coap-client-notls not installed (apt-get install -y libcoap3-bin)")
		}
		t.Fatalf("coap-client-notls missing in CI: %v", err)
	}
	return p
}

func runLibcoap(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		t.Fatalf("coap-client-notls %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestInteropLibcoap: libcoap's coap-client against our server.
func TestInteropLibcoap(t *testing.T) {
	bin := libcoapClient(t)
	s := ourServer(t)
	base := "coap://" + s.Addr().String()

	out := runLibcoap(t, bin, "-m", "get", "-B", "10", base+WellKnownCore)
	if !strings.Contains(out, `</big>;rt="test.big";sz=12000`) || !strings.Contains(out, `</obs>;rt="test.obs";obs`) {
		t.Fatalf("/.well-known/core: %q", out)
	}
	out = runLibcoap(t, bin, "-m", "get", "-B", "10", base+WellKnownCore+"?rt=test.h*")
	if strings.TrimSpace(out) != `</hello>;rt="test.hello"` {
		t.Fatalf("filtered /.well-known/core: %q", out)
	}

	dir := t.TempDir()
	outFile := dir + "/big"
	runLibcoap(t, bin, "-m", "get", "-B", "10", "-o", outFile, base+"/big")
	if b, _ := os.ReadFile(outFile); !bytes.Equal(b, bigBody) {
		t.Fatalf("GET /big via libcoap: %d bytes", len(b))
	}
	inFile := dir + "/up"
	os.WriteFile(inFile, bigBody, 0o644)
	echoFile := dir + "/echo"
	runLibcoap(t, bin, "-m", "post", "-b", "512", "-f", inFile, "-B", "10", "-o", echoFile, base+"/echo")
	if b, _ := os.ReadFile(echoFile); !bytes.Equal(b, bigBody) {
		t.Fatalf("POST /echo via libcoap: %d bytes echoed", len(b))
	}

	stop := notifyLoop(s, 100*time.Millisecond)
	defer stop()
	out = runLibcoap(t, bin, "-m", "get", "-s", "2", "-B", "4", base+"/obs")
	n := len(regexp.MustCompile(`n[0-9]+`).FindAllString(out, -1))
	if !strings.HasPrefix(out, "n0n1") || n < 4 {
		t.Fatalf("observe via libcoap got %d notifications: %q", n, out)
	}
}

// TestInteropLibcoapServer: our client against libcoap's coap-server:
// discovery, a block-wise upload and download of a dynamically created
// resource (> 10 KB each way), and an observation of its /time resource.
func TestInteropLibcoapServer(t *testing.T) {
	bin, err := exec.LookPath("coap-server-notls")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("coap-server-notls not installed (apt-get install -y libcoap3-bin)")
		}
		t.Fatalf("coap-server-notls missing in CI: %v", err)
	}
	// Find a free port, then let the server bind it.
	probe, err := ListenCoAPUDP(UDPConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().Port()
	probe.Close()
	ctx := testCtx(t)
	srv := exec.CommandContext(ctx, bin, "-A", "127.0.0.1", "-p", fmt.Sprint(port), "-d", "10")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	s := ourServer(t)
	peer := fmt.Sprintf("127.0.0.1:%d", port)

	var resp coap.Message
	for i := 0; ; i++ { // the server may take a moment to bind
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err = s.Do(short, peer, coap.NewRequest(codes.GET, WellKnownCore, nil))
		cancel()
		if err == nil || i == 5 {
			break
		}
	}
	if err != nil || resp.Code != codes.Content || !strings.Contains(string(resp.Payload), "</time>") {
		t.Fatalf("GET /.well-known/core: %v %q %v", resp.Code, resp.Payload, err)
	}
	resp, err = s.Do(ctx, peer, coap.NewRequest(codes.PUT, "/big", bigBody))
	if err != nil || resp.Code != codes.Created && resp.Code != codes.Changed {
		t.Fatalf("PUT /big: %v %q %v", resp.Code, resp.Payload, err)
	}
	resp, err = s.Do(ctx, peer, coap.NewRequest(codes.GET, "/big", nil))
	if err != nil || !bytes.Equal(resp.Payload, bigBody) {
		t.Fatalf("GET /big: %v, %d bytes, %v", resp.Code, len(resp.Payload), err)
	}
	got := make(chan string, 8)
	first, cancel, err := s.Observe(ctx, peer, coap.NewRequest(codes.GET, "/time", nil), func(m coap.Message) {
		select {
		case got <- string(m.Payload):
		default:
		}
	})
	if err != nil || first.Code != codes.Content {
		t.Fatalf("observe /time: %v %v", first.Code, err)
	}
	defer cancel()
	for n := 0; n < 2; n++ {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("only %d notifications from /time", n)
		}
	}
}
