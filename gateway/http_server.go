package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mxmesh/mxmesh/homeserver"
)

// HTTPServer runs the HTTP front door on a plain listener (the client API)
// and a TLS listener (federation and the client API), both serving the
// same HTTPHandler. Listen* bind at once, so a port in use is reported
// before the node starts; Serve starts accepting.
type HTTPServer struct {
	handler http.Handler
	log     *slog.Logger

	mu      sync.Mutex
	servers []*http.Server
	lns     []net.Listener
	errs    chan error
}

// NewHTTPServer returns a server for n with no listeners yet.
func NewHTTPServer(n *homeserver.Node, log *slog.Logger) *HTTPServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPServer{handler: NewHTTPHandler(n, log), log: log, errs: make(chan error, 4)}
}

func (s *HTTPServer) newServer(tlsCfg *tls.Config) *http.Server {
	return &http.Server{
		Handler:           s.handler,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// No WriteTimeout: /sync long-polls for as long as the client asks.
	}
}

// ListenPlain binds the plain-HTTP listener on addr and returns its
// address (useful with port 0).
func (s *HTTPServer) ListenPlain(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on client address %s: %w", addr, err)
	}
	s.add(s.newServer(nil), ln)
	return ln.Addr(), nil
}

// ListenTLS binds the TLS listener on addr with the PEM certificate and
// key files.
func (s *HTTPServer) ListenTLS(addr, certFile, keyFile string) (net.Addr, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s: %w", certFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on TLS address %s: %w", addr, err)
	}
	s.add(s.newServer(cfg), tls.NewListener(ln, cfg))
	return ln.Addr(), nil
}

func (s *HTTPServer) add(srv *http.Server, ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers = append(s.servers, srv)
	s.lns = append(s.lns, ln)
}

// Serve starts accepting on every listener. A listener that fails
// reports on Errors.
func (s *HTTPServer) Serve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, srv := range s.servers {
		srv, ln := srv, s.lns[i]
		s.log.Info("http front door listening", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errs <- fmt.Errorf("http server on %s: %w", ln.Addr(), err)
			}
		}()
	}
}

// Errors reports listeners that stopped on their own.
func (s *HTTPServer) Errors() <-chan error { return s.errs }

// Shutdown stops accepting and waits (until ctx ends) for in-flight
// requests; long polls must be released by stopping the node meanwhile.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := append([]*http.Server(nil), s.servers...)
	lns := append([]net.Listener(nil), s.lns...)
	s.mu.Unlock()
	var errs []error
	for i, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
		lns[i].Close() // in case Serve was never called
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
