package apinizertest

import (
	"fmt"
	"net"
	"net/http/httptest"
	"sync"
)

// Server is a Simulator listening on a loopback address, for tests. The
// embedded Simulator gives access to seeding, faults and the request log.
type Server struct {
	*Simulator
	// URL is the base URL, "http://127.0.0.1:port", without a trailing
	// slash. It stays the same across Stop and Restart.
	URL string

	mu   sync.Mutex
	addr string
	srv  *httptest.Server // nil while stopped
}

// NewServer starts a Simulator on 127.0.0.1 with a free port. The caller
// must Close it.
func NewServer(cfg Config) *Server {
	s := &Server{Simulator: New(cfg)}
	s.srv = httptest.NewServer(s.Simulator)
	s.URL = s.srv.URL
	s.addr = s.srv.Listener.Addr().String()
	return s
}

// Stop takes the server down as a crashed Apinizer: the listener is closed so
// new connections are refused, and open connections are cut, which also
// releases requests held by Hang or latency. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	// Close the listener before cutting connections, so that none slips in
	// between and keeps Close waiting.
	_ = srv.Listener.Close()
	srv.CloseClientConnections()
	srv.Close()
}

// Restart listens again on the address the server had before Stop, with all
// state kept. Restarting a running server does nothing.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("apinizertest: restart on %s: %w", s.addr, err)
	}
	srv := httptest.NewUnstartedServer(s.Simulator)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	s.srv = srv
	return nil
}

// Close shuts the server down for good; it is Stop under the name
// httptest.Server uses.
func (s *Server) Close() { s.Stop() }
