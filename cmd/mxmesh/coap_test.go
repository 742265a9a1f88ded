package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
)

func TestCoAPCLI(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 5000)
	echo := gateway.CoAPHandlerFunc(func(r *gateway.CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Changed, Payload: r.Msg.Payload})
	})
	obs := gateway.CoAPHandlerFunc(func(r *gateway.CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Content, Payload: []byte("v0")})
	})
	s, err := gateway.ListenCoAPUDP(gateway.UDPConfig{Addr: "127.0.0.1:0"},
		gateway.CoAPResource{Path: "/echo", Attrs: `rt="echo"`, Handler: echo},
		gateway.CoAPResource{Path: "/obs", Attrs: "obs", Handler: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "coap://" + s.Addr().String()
	cli := func(stdin []byte, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"coap"}, args...), bytes.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := cli(nil, "get", base+"/.well-known/core"); code != 0 || out != "</echo>;rt=\"echo\",</obs>;obs\n" {
		t.Fatalf("discover: %d %q", code, out)
	}
	if code, out, errs := cli(big, "post", "--data-file", "-", base+"/echo"); code != 0 || out != string(big)+"\n" || !strings.Contains(errs, "Changed") {
		t.Fatalf("post: %d, %d bytes, %q", code, len(out), errs)
	}
	if code, _, errs := cli(nil, "get", base+"/nope"); code != 1 || !strings.Contains(errs, "NotFound") {
		t.Fatalf("missing resource: %d %q", code, errs)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 50; i++ {
			time.Sleep(20 * time.Millisecond)
			s.Notify(context.Background(), "/obs", coap.Message{Code: codes.Content, Payload: []byte("v")}, false)
		}
	}()
	if code, out, _ := cli(nil, "observe", "--count", "2", base+"/obs"); code != 0 || !strings.HasPrefix(out, "v0\nv\nv\n") {
		t.Fatalf("observe: %d %q", code, out)
	}
	<-done
	if code, _, _ := cli(nil, "get", "coap://192.0.2.1:5683/x"); code != 1 {
		t.Fatalf("non-loopback target accepted: %d", code)
	}
	if code, _, _ := cli(nil, "fetch", base+"/x"); code != 2 {
		t.Fatalf("unknown method: %d", code)
	}
}
