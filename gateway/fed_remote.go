package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mxmesh/mxmesh/homeserver"
)

// Limits of FederationRemote.
const (
	// fedRequestTimeout bounds one outbound federation request.
	fedRequestTimeout = 60 * time.Second
	// fedMaxInFlight bounds concurrent outbound requests; more wait their
	// turn (on their own goroutine, never in the node loop).
	fedMaxInFlight = 64
)

// FederationRemote is the homeserver.Remote of real mode: each request
// goes out through a FederationClient (discovery, TLS, X-Matrix signing)
// on its own goroutine, and its completion is posted into the node's Loop
// (DESIGN.md "The runtime model": completions come back into the loop as
// events). Do is safe for concurrent use and never blocks.
type FederationRemote struct {
	client *FederationClient
	loop   *homeserver.Loop
	log    *slog.Logger
	sem    chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewFederationRemote returns a Remote sending with client and posting
// completions into loop. log may be nil.
func NewFederationRemote(client *FederationClient, loop *homeserver.Loop, log *slog.Logger) *FederationRemote {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &FederationRemote{client: client, loop: loop, log: log, sem: make(chan struct{}, fedMaxInFlight), ctx: ctx, cancel: cancel}
}

// Do implements homeserver.Remote.
func (r *FederationRemote) Do(dest string, req homeserver.OutboundRequest, done func(homeserver.OutboundResponse, error)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		resp, err := r.send(dest, req)
		if perr := r.loop.Post(func() { done(resp, err) }); perr != nil {
			r.log.Debug("federation answer dropped: loop closed", "dest", dest, "uri", req.URI)
		}
	}()
}

func (r *FederationRemote) send(dest string, req homeserver.OutboundRequest) (homeserver.OutboundResponse, error) {
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-r.ctx.Done():
		return homeserver.OutboundResponse{}, fmt.Errorf("federation %s %s%s: %w", req.Method, dest, req.URI, r.ctx.Err())
	}
	ctx, cancel := context.WithTimeout(r.ctx, fedRequestTimeout)
	defer cancel()
	resp, err := r.client.do(ctx, dest, req.Method, req.URI, req.Body, !req.Unsigned)
	var out homeserver.OutboundResponse
	if resp != nil {
		out = homeserver.OutboundResponse{Status: resp.Status, Body: resp.Body}
		if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			out.ContentType = ct
		}
	}
	var fe *FederationError
	if errors.As(err, &fe) {
		// Callers branch on *homeserver.RemoteError.
		err = fmt.Errorf("federation %s %s%s: %w", req.Method, dest, req.URI,
			&homeserver.RemoteError{Status: fe.Status, ErrCode: fe.ErrCode, Message: fe.Message})
	}
	return out, err
}

// Close cancels requests in flight and waits for their goroutines; their
// completions are still posted if the loop runs.
func (r *FederationRemote) Close() {
	r.cancel()
	r.wg.Wait()
}
