package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkHTTPWhoami measures one authenticated request through the HTTP
// front door on a warm loopback connection: net/http, translation, the
// loop hand-off, the node and the JSON answer.
func BenchmarkHTTPWhoami(b *testing.B) {
	base := accountsTestServer(b, nil)
	resp, err := http.Post(base+"/_matrix/client/v3/register", "application/json",
		strings.NewReader(`{"username":"bench","password":"pw","auth":{"type":"m.login.dummy"}}`))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := string(body)
	tok := s[strings.Index(s, `"access_token":"`)+16:]
	tok = tok[:strings.IndexByte(tok, '"')]
	req, _ := http.NewRequest("GET", base+"/_matrix/client/v3/account/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != 200 {
			b.Fatalf("status %d", r.StatusCode)
		}
	}
}
