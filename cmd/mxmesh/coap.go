package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
)

func init() {
	register(command{name: "coap", summary: "plain CoAP requests to a loopback node, for debugging", run: runCoAP})
}

const coapUsage = "usage: mxmesh coap get|post|put|delete|observe [--data D | --data-file F] [--timeout T] [--count N] coap://127.0.0.1:PORT/PATH[?QUERY]"

// runCoAP sends one request over plain CoAP (loopback addresses only) and
// prints the response code on stderr and the payload on stdout. observe
// prints the answer and then each notification, one per line, until
// --count notifications or --timeout.
func runCoAP(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, coapUsage)
		return 2
	}
	method := args[0]
	fset := flag.NewFlagSet("coap", flag.ContinueOnError)
	fset.SetOutput(stderr)
	data := fset.String("data", "", "request payload")
	dataFile := fset.String("data-file", "", "read the request payload from this file ('-' for stdin)")
	timeout := fset.Duration("timeout", 2*time.Minute, "give up after this long")
	count := fset.Int("count", 0, "observe: stop after this many notifications (0: until --timeout)")
	if err := fset.Parse(args[1:]); err != nil {
		return 2
	}
	if fset.NArg() != 1 {
		fmt.Fprintln(stderr, coapUsage)
		return 2
	}
	code := map[string]codes.Code{"get": codes.GET, "post": codes.POST, "put": codes.PUT,
		"delete": codes.DELETE, "observe": codes.GET}[method]
	if code == 0 {
		fmt.Fprintf(stderr, "mxmesh coap: unknown method %q\n%s\n", method, coapUsage)
		return 2
	}
	u, err := url.Parse(fset.Arg(0))
	if err != nil || u.Scheme != "coap" || u.Port() == "" {
		fmt.Fprintf(stderr, "mxmesh coap: %q is not a coap://HOST:PORT/PATH URL\n", fset.Arg(0))
		return 2
	}
	payload := []byte(*data)
	if *dataFile != "" {
		if *dataFile == "-" {
			payload, err = io.ReadAll(stdin)
		} else {
			payload, err = os.ReadFile(*dataFile)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mxmesh coap: %v\n", err)
			return 1
		}
	}
	target := u.EscapedPath()
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	req := coap.NewRequest(code, target, payload)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	local := "127.0.0.1:0"
	if strings.HasPrefix(host, "[") {
		local = "[::1]:0"
	}
	s, err := gateway.ListenCoAPUDP(gateway.UDPConfig{Addr: local})
	if err != nil {
		fmt.Fprintf(stderr, "mxmesh coap: %v\n", err)
		return 1
	}
	defer s.Close()
	peer := host + ":" + u.Port()

	if method != "observe" {
		resp, err := s.Do(ctx, peer, req)
		if err != nil {
			fmt.Fprintf(stderr, "mxmesh coap: %v\n", err)
			return 1
		}
		return printCoAP(resp, stdout, stderr)
	}
	notes := make(chan coap.Message, 64)
	first, cancelObs, err := s.Observe(ctx, peer, req, func(m coap.Message) {
		select {
		case notes <- m:
		default: // the printer is behind: drop, a newer one follows
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "mxmesh coap: %v\n", err)
		return 1
	}
	defer cancelObs()
	if rc := printCoAP(first, stdout, stderr); rc != 0 {
		return rc
	}
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case m := <-notes:
			printCoAP(m, stdout, stderr)
		case <-ctx.Done():
			return 0
		}
	}
	return 0
}

func printCoAP(m coap.Message, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "%v\n", m.Code)
	stdout.Write(m.Payload)
	if len(m.Payload) > 0 {
		fmt.Fprintln(stdout)
	}
	if m.Code>>5 != 2 {
		return 1
	}
	return 0
}
