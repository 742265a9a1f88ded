package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver"
)

// HTTPHandler is the HTTP front door: it turns each net/http request into a
// homeserver.Request, has the node serve it (Node.Handle posts it into the
// node loop), and writes the Response as JSON (a *homeserver.RawBody,
// media, as its bytes with its own headers).
//
// Translation (client-server-api "API standards"):
//   - path: the escaped request path, untouched, so "%2F" inside a path
//     parameter survives; query: decoded;
//   - access token: "Authorization: Bearer TOKEN", else the deprecated
//     access_token query parameter; the raw Authorization header and the
//     request target as sent are passed on for X-Matrix verification;
//   - body: read up to Node.MaxBody for the route (max_request_bytes;
//     media.max_upload_bytes for uploads); beyond it 413 M_TOO_LARGE
//     without reading further;
//   - Content-Type: passed on (media uploads keep it);
//   - CORS: every response carries the headers the spec's "Web Browser
//     Clients" section lists; OPTIONS preflights are answered here;
//   - 429 answers also carry Retry-After (seconds, rounded up).
//
// Safe for concurrent use.
type HTTPHandler struct {
	node *homeserver.Node
	log  *slog.Logger
}

// NewHTTPHandler returns the front door for n.
func NewHTTPHandler(n *homeserver.Node, log *slog.Logger) *HTTPHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPHandler{node: n, log: log}
}

// setCORS adds the headers browser clients need.
// Spec: client-server-api "Web Browser Clients".
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	if r.Method == http.MethodOptions {
		writeJSON(w, http.StatusOK, []byte("{}"))
		return
	}
	req := &homeserver.Request{
		Method:   r.Method,
		Path:     r.URL.EscapedPath(),
		Query:    r.URL.Query(),
		RemoteIP: remoteIP(r.RemoteAddr),
		// The target as sent, which an X-Matrix signature covers.
		URI:         r.RequestURI,
		ContentType: r.Header.Get("Content-Type"),
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.Authorization = auth
		scheme, tok, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			req.AccessToken = strings.TrimSpace(tok)
		}
	} else {
		req.AccessToken = req.Query.Get("access_token")
	}
	max := h.node.MaxBody(req.Method, req.Path)
	if max > 0 && r.ContentLength > max {
		h.writeError(w, homeserver.Errorf(413, homeserver.ErrCodeTooLarge, "request body exceeds %d bytes", max))
		return
	}
	body, err := readBody(r.Body, max)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.writeError(w, homeserver.Errorf(413, homeserver.ErrCodeTooLarge, "request body exceeds %d bytes", max))
			return
		}
		h.log.Debug("http: reading request body", "err", err)
		h.writeError(w, homeserver.Errorf(400, homeserver.ErrCodeUnknown, "could not read request body"))
		return
	}
	req.Body = body
	resp, err := h.node.Handle(r.Context(), req)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return // the client has gone
		}
		h.writeError(w, homeserver.Errorf(503, homeserver.ErrCodeUnknown, "server is shutting down"))
		return
	}
	h.writeResponse(w, resp)
}

func readBody(rc io.ReadCloser, max int64) ([]byte, error) {
	if rc == nil || rc == http.NoBody {
		return nil, nil
	}
	var r io.Reader = rc
	if max > 0 {
		r = http.MaxBytesReader(nil, rc, max)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

func (h *HTTPHandler) writeError(w http.ResponseWriter, e *homeserver.Error) {
	h.writeResponse(w, e.Response())
}

func (h *HTTPHandler) writeResponse(w http.ResponseWriter, resp homeserver.Response) {
	if raw, ok := resp.Body.(*homeserver.RawBody); ok {
		writeRaw(w, resp.Status, raw)
		return
	}
	var data []byte
	if resp.Body == nil {
		data = []byte("{}")
	} else {
		var err error
		data, err = json.Marshal(resp.Body)
		if err != nil {
			h.log.Error("http: response does not marshal", "err", err)
			resp.Status = 500
			data = []byte(`{"errcode":"M_UNKNOWN","error":"internal server error"}`)
		}
	}
	if resp.Status == http.StatusTooManyRequests {
		if m, ok := resp.Body.(map[string]any); ok {
			if ms, ok := m["retry_after_ms"].(int64); ok && ms > 0 {
				w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
			}
		}
	}
	writeJSON(w, resp.Status, data)
}

func writeJSON(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeRaw writes a body that is not JSON (media) with its own headers.
func writeRaw(w http.ResponseWriter, status int, raw *homeserver.RawBody) {
	for k, v := range raw.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(raw.Data)))
	w.WriteHeader(status)
	_, _ = w.Write(raw.Data)
}
