package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
)

// UDPConfig configures a UDPServer.
type UDPConfig struct {
	// Addr is the UDP address to listen on, "127.0.0.1:5683". Without
	// Node.Noise it must be a loopback address.
	Addr string
	Node CoAPNodeConfig
	// Clock defaults to clock.Real().
	Clock  clock.Clock
	Logger *slog.Logger
}

// UDPServer runs a CoAPNode on a UDP socket: one goroutine reads the
// socket, clock timers fire, and both post work into a single loop
// goroutine that alone touches the node (DESIGN.md, "The runtime model").
// Its methods are safe for concurrent use.
type UDPServer struct {
	conn  *net.UDPConn
	node  *CoAPNode
	clk   clock.Clock
	log   *slog.Logger
	addr  netip.AddrPort
	timer clock.Timer
	at    time.Time

	mu        sync.Mutex
	queue     []func()
	datagrams int    // received datagrams queued
	dropped   uint64 // received datagrams dropped because the loop lagged
	traffic   Traffic
	wake      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
}

// ErrClosed is returned by calls on a closed UDPServer.
var ErrClosed = errors.New("gateway: coap udp server closed")

// ListenCoAPUDP opens the socket and starts serving resources.
func ListenCoAPUDP(cfg UDPConfig, resources ...CoAPResource) (*UDPServer, error) {
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: coap listen %q: %w", cfg.Addr, err)
	}
	if cfg.Node.Noise == nil && !ap.Addr().Unmap().IsLoopback() {
		return nil, fmt.Errorf("gateway: coap listen %q: %w", cfg.Addr, ErrNotLoopback)
	}
	if cfg.Node.Logger == nil {
		cfg.Node.Logger = cfg.Logger
	}
	if cfg.Node.CoAP.RNG == nil {
		cfg.Node.CoAP.RNG = clock.SystemRNG() // initial Message IDs, jitter
	}
	node, err := NewCoAPNode(cfg.Node, resources...)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("gateway: coap listen %q: %w", cfg.Addr, err)
	}
	s := &UDPServer{conn: conn, node: node, clk: cfg.Clock, log: cfg.Logger,
		addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), wake: make(chan struct{}, 1), done: make(chan struct{})}
	if s.clk == nil {
		s.clk = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Handlers may answer from any goroutine: route their replies through
	// the loop.
	viaLoop := func(h CoAPHandler) CoAPHandler {
		return CoAPHandlerFunc(func(req *CoAPRequest, reply func(coap.Message)) {
			if notify := req.Notify; notify != nil {
				req.Notify = func(m *coap.Message, done func(bool, bool)) {
					s.post(func() {
						s.node.now = s.clk.Now()
						notify(m, done)
					})
				}
			}
			h.ServeCoAP(req, func(m coap.Message) {
				s.post(func() {
					s.node.now = s.clk.Now() // a late answer is sent at its own time
					reply(m)
				})
			})
		})
	}
	for i := range node.res {
		node.res[i].Handler = viaLoop(node.res[i].Handler)
		node.byKey[node.res[i].Path] = &node.res[i]
	}
	if node.fallback != nil {
		node.fallback = viaLoop(node.fallback)
	}
	s.wg.Add(2)
	go s.readLoop()
	go s.loop()
	return s, nil
}

// Addr is the bound address.
func (s *UDPServer) Addr() netip.AddrPort { return s.addr }

// Dropped counts received datagrams dropped because the loop lagged.
func (s *UDPServer) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Traffic counts datagrams and their bytes (UDP payload: CoAP, and Noise
// when secured; no IP or UDP headers).
type Traffic struct {
	SentDatagrams, SentBytes uint64
	RecvDatagrams, RecvBytes uint64
}

// Traffic returns the counters so far.
func (s *UDPServer) Traffic() Traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.traffic
}

// Node returns the node; touch it only inside Run.
func (s *UDPServer) Node() *CoAPNode { return s.node }

// Close stops the goroutines and closes the socket.
func (s *UDPServer) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.conn.Close()
		s.wg.Wait()
		if s.timer != nil {
			s.timer.Stop()
		}
	})
	return err
}

// maxQueuedDatagrams bounds the received datagrams waiting for the loop;
// beyond it the socket reader drops them (and counts) rather than letting a
// flood grow memory.
const maxQueuedDatagrams = 4096

// post queues f for the loop; it never blocks.
func (s *UDPServer) post(f func()) {
	s.mu.Lock()
	s.queue = append(s.queue, f)
	s.mu.Unlock()
	s.signal()
}

// postDatagram queues a received datagram unless the loop is too far behind.
func (s *UDPServer) postDatagram(f func()) bool {
	s.mu.Lock()
	if s.datagrams >= maxQueuedDatagrams {
		s.mu.Unlock()
		return false
	}
	s.datagrams++
	s.queue = append(s.queue, func() {
		s.mu.Lock()
		s.datagrams--
		s.mu.Unlock()
		f()
	})
	s.mu.Unlock()
	s.signal()
	return true
}

func (s *UDPServer) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Go queues f to run on the loop with the node and the current time, and
// returns at once; datagrams f makes are sent when it returns. It fails
// with ErrClosed once the server is closed (f then never runs).
func (s *UDPServer) Go(f func(n *CoAPNode, now time.Time)) error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	s.post(func() { f(s.node, s.clk.Now()) })
	return nil
}

// Run calls f on the loop with the node and the current time, and waits.
func (s *UDPServer) Run(ctx context.Context, f func(n *CoAPNode, now time.Time)) error {
	ran := make(chan struct{})
	s.post(func() { f(s.node, s.clk.Now()); close(ran) })
	select {
	case <-ran:
		return nil
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *UDPServer) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("gateway: coap udp read", "err", err)
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		s.mu.Lock()
		s.traffic.RecvDatagrams++
		s.traffic.RecvBytes += uint64(n)
		s.mu.Unlock()
		if !s.postDatagram(func() {
			if err := s.node.Receive(s.clk.Now(), from, data); err != nil {
				s.log.Debug("gateway: coap receive", "from", from, "err", err)
			}
		}) {
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}

func (s *UDPServer) loop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, f := range q {
				f()
			}
		}
		s.flush()
	}
}

// flush sends the node's datagrams and re-arms the timer for its next
// deadline.
func (s *UDPServer) flush() {
	for _, d := range s.node.Outgoing() {
		if _, err := s.conn.WriteToUDPAddrPort(d.Data, d.To); err != nil {
			s.log.Debug("gateway: coap udp write", "to", d.To, "err", err)
			continue
		}
		s.mu.Lock()
		s.traffic.SentDatagrams++
		s.traffic.SentBytes += uint64(len(d.Data))
		s.mu.Unlock()
	}
	at, ok := s.node.NextDeadline()
	if !ok || (s.timer != nil && at.Equal(s.at)) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.at = at
	s.timer = s.clk.AfterFunc(at.Sub(s.clk.Now()), func() {
		s.post(func() {
			s.at = time.Time{}
			s.node.Tick(s.clk.Now())
		})
	})
}

// Do sends req to peer and waits for the whole response.
func (s *UDPServer) Do(ctx context.Context, peer string, req *coap.Message) (coap.Message, error) {
	ch := make(chan coap.Event, 1)
	var id uint64
	var serr error
	if err := s.Run(ctx, func(n *CoAPNode, now time.Time) {
		id, serr = n.Send(now, peer, req, coap.SendOptions{}, func(ev coap.Event) { ch <- ev })
	}); err != nil {
		return coap.Message{}, err
	}
	if serr != nil {
		return coap.Message{}, serr
	}
	select {
	case ev := <-ch:
		if ev.Kind == coap.RequestFailed {
			return coap.Message{}, ev.Err
		}
		return ev.Msg, nil
	case <-ctx.Done():
		s.post(func() { s.node.Cancel(s.clk.Now(), id) })
		return coap.Message{}, ctx.Err()
	case <-s.done:
		return coap.Message{}, ErrClosed
	}
}

// Observe registers an observation of req (a GET; the Observe option is
// added) at peer and returns the first answer. Each later notification is
// passed to notify on the loop goroutine, which notify must not block.
// cancel forgets the observation (RFC 7641 §3.6).
func (s *UDPServer) Observe(ctx context.Context, peer string, req *coap.Message, notify func(coap.Message)) (first coap.Message, cancel func(), err error) {
	r := *req
	r.Options = append(r.Options[:0:0], req.Options...)
	r.Options, _, _ = r.Options.SetObserve(make([]byte, 4), 0)
	ch := make(chan coap.Event, 1)
	var id uint64
	var serr error
	firstDone := false
	if err := s.Run(ctx, func(n *CoAPNode, now time.Time) {
		id, serr = n.Send(now, peer, &r, coap.SendOptions{}, func(ev coap.Event) {
			if !firstDone {
				firstDone = true
				ch <- ev
				return
			}
			if ev.Kind == coap.NotificationReceived || ev.Kind == coap.ResponseReceived {
				notify(ev.Msg)
			}
		})
	}); err != nil {
		return coap.Message{}, nil, err
	}
	if serr != nil {
		return coap.Message{}, nil, serr
	}
	cancel = func() { s.post(func() { s.node.Cancel(s.clk.Now(), id) }) }
	select {
	case ev := <-ch:
		if ev.Kind == coap.RequestFailed {
			cancel()
			return coap.Message{}, nil, ev.Err
		}
		return ev.Msg, cancel, nil
	case <-ctx.Done():
		cancel()
		return coap.Message{}, nil, ctx.Err()
	case <-s.done:
		return coap.Message{}, nil, ErrClosed
	}
}

// Notify pushes msg to the observers of path.
func (s *UDPServer) Notify(ctx context.Context, path string, msg coap.Message, confirmable bool) (int, error) {
	var n int
	var nerr error
	if err := s.Run(ctx, func(node *CoAPNode, now time.Time) { n, nerr = node.Notify(now, path, &msg, confirmable) }); err != nil {
		return 0, err
	}
	return n, nerr
}
