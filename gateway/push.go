package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mxmesh/mxmesh/homeserver"
)

var _ homeserver.Pusher = (*PushClient)(nil)

// Limits of PushClient.
const (
	// pushRequestTimeout bounds one notification, connection included.
	pushRequestTimeout = 30 * time.Second
	// pushMaxInFlight bounds concurrent notifications; more wait their
	// turn on their own goroutine.
	pushMaxInFlight = 32
	// pushMaxResponse bounds how much of a gateway's answer is read (the
	// answer is {"rejected": [pushkey, …]}).
	pushMaxResponse = 64 << 10
)

// PushClient is the homeserver.Pusher of real mode: it POSTs push
// notifications to push gateways (push-gateway-api
// /_matrix/push/v1/notify) over HTTPS with the system's roots, each on its
// own goroutine, and posts the answer into the node's loop (DESIGN.md "The
// runtime model"). Redirects are not followed. Notify is safe for
// concurrent use and never blocks.
type PushClient struct {
	client *http.Client
	post   func(func()) error
	log    *slog.Logger
	sem    chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// PushClientConfig configures a PushClient.
type PushClientConfig struct {
	// Post runs a function inside the node loop (homeserver.Loop.Post).
	Post func(func()) error
	// Logger may be nil.
	Logger *slog.Logger
	// HTTPClient is the client to send with; nil is one with
	// pushRequestTimeout and the system's TLS roots. Its redirect policy
	// is replaced: redirects are not followed.
	HTTPClient *http.Client
	// AllowPrivate lets notifications reach loopback, private, link-local
	// and other non-public addresses (config push.allow_private_addresses).
	// Otherwise the address a gateway's name resolves to is checked when
	// connecting, and such addresses are refused: a pusher's URL is chosen
	// by users, who must not make the node post into its own network.
	AllowPrivate bool
}

// errPushAddress refuses a push gateway at a non-public address.
var errPushAddress = errors.New("push gateway address is not public (push.allow_private_addresses is off)")

// pushGuard refuses push gateways at non-public addresses (addrguard.go).
var pushGuard = &addrGuard{refused: errPushAddress}

// NewPushClient returns a PushClient.
func NewPushClient(cfg PushClientConfig) (*PushClient, error) {
	if cfg.Post == nil {
		return nil, errors.New("gateway: push client: Post is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &http.Client{Timeout: pushRequestTimeout}
	if cfg.HTTPClient != nil {
		cc := *cfg.HTTPClient
		c = &cc
		if c.Timeout == 0 || c.Timeout > pushRequestTimeout {
			c.Timeout = pushRequestTimeout
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if !cfg.AllowPrivate {
		var t *http.Transport
		if base, ok := c.Transport.(*http.Transport); ok {
			t = base.Clone()
		} else if c.Transport == nil {
			t = http.DefaultTransport.(*http.Transport).Clone()
		} else {
			return nil, errors.New("gateway: push client: cannot guard the addresses of a custom RoundTripper (set AllowPrivate)")
		}
		guardDial(t, pushGuard, pushRequestTimeout)
		c.Transport = t
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &PushClient{client: c, post: cfg.Post, log: log, sem: make(chan struct{}, pushMaxInFlight), ctx: ctx, cancel: cancel}, nil
}

// Notify implements homeserver.Pusher.
func (p *PushClient) Notify(url string, body []byte, done func(status int, respBody []byte, err error)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		status, resp, err := p.send(url, body)
		if perr := p.post(func() { done(status, resp, err) }); perr != nil {
			p.log.Debug("push answer dropped: loop closed", "url", url)
		}
	}()
}

func (p *PushClient) send(url string, body []byte) (int, []byte, error) {
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-p.ctx.Done():
		return 0, nil, fmt.Errorf("push to %s: %w", url, p.ctx.Err())
	}
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("push to %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("push to %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, pushMaxResponse))
	if err != nil {
		return 0, nil, fmt.Errorf("push to %s: read answer: %w", url, err)
	}
	return resp.StatusCode, data, nil
}

// Close cancels notifications in flight and waits for their goroutines;
// their completions are still posted if the loop runs.
func (p *PushClient) Close() {
	p.cancel()
	p.wg.Wait()
}
