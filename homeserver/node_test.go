package homeserver

import (
	"strings"
	"testing"
	"time"
)

// withTestRoutes adds a route group for the duration of a test.
func withTestRoutes(t *testing.T, routes ...Route) {
	saved := routeGroups
	routeGroups = append(append([]func(*Node) ([]Route, error){}, saved...),
		func(*Node) ([]Route, error) { return routes, nil })
	t.Cleanup(func() { routeGroups = saved })
}

func TestRouting(t *testing.T) {
	withTestRoutes(t, Route{Method: "PUT", Pattern: "/_test/rooms/{roomId}/send/{type}/{txn}",
		Handle: func(c *Call) { c.Reply(200, c.Req.Vars) }})
	tn := newTestNode(t, nil)

	r := tn.do("PUT", "/_test/rooms/%21abc%3Atest.local/send/m.room.message/t%2F1", "", nil)
	if r.Status != 200 || r.str("roomId") != "!abc:test.local" || r.str("type") != "m.room.message" || r.str("txn") != "t/1" {
		t.Fatalf("vars: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", "/_test/rooms/x/send/y/z", "", nil), 405, ErrCodeUnrecognized)
	wantErr(t, tn.do("PUT", "/_test/rooms//send/y/z", "", nil), 404, ErrCodeUnrecognized)
	wantErr(t, tn.do("PUT", "/_test/rooms/x/send/y/z/extra", "", nil), 404, ErrCodeUnrecognized)
	wantErr(t, tn.do("GET", "/_matrix/client/v3/nonsense", "", nil), 404, ErrCodeUnrecognized)
	wantErr(t, tn.do("GET", "no-slash", "", nil), 404, ErrCodeUnrecognized)
	wantErr(t, tn.do("PUT", "/_test/rooms/%zz/send/y/z", "", nil), 404, ErrCodeUnrecognized)
}

func TestDuplicateRouteRejected(t *testing.T) {
	base := newTestNode(t, nil) // built before the duplicate is added
	h := func(c *Call) {}
	withTestRoutes(t, Route{Method: "GET", Pattern: "/x", Handle: h}, Route{Method: "GET", Pattern: "/x", Handle: h})
	_, err := New(Options{Config: base.cfg, Store: base.store, SigningKey: base.key})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("got %v, want duplicate route error", err)
	}
}

func TestRequestTooLarge(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.MaxRequestBytes = 100 })
	body := `{"username":"` + strings.Repeat("a", 200) + `"}`
	wantErr(t, tn.do("POST", "/_matrix/client/v3/register", "", body), 413, ErrCodeTooLarge)
}

func TestBadJSON(t *testing.T) {
	tn := newTestNode(t, nil)
	wantErr(t, tn.do("POST", "/_matrix/client/v3/login", "", "{not json"), 400, ErrCodeNotJSON)
	wantErr(t, tn.do("POST", "/_matrix/client/v3/login", "", "[1,2]"), 400, ErrCodeBadJSON)
	wantErr(t, tn.do("POST", "/_matrix/client/v3/login", "", `{"type": 5}`), 400, ErrCodeBadJSON)
}

func TestAuthErrors(t *testing.T) {
	tn := newTestNode(t, nil)
	wantErr(t, tn.do("GET", "/_matrix/client/v3/account/whoami", "", nil), 401, ErrCodeMissingToken)
	r := tn.do("GET", "/_matrix/client/v3/account/whoami", "mxm_bogus", nil)
	wantErr(t, r, 401, ErrCodeUnknownToken)
	if r.Body["soft_logout"] != false {
		t.Errorf("soft_logout missing: %s", r.Raw)
	}
}

func TestPanicBecomes500(t *testing.T) {
	withTestRoutes(t, Route{Method: "GET", Pattern: "/_test/panic", Handle: func(c *Call) { panic("boom") }})
	tn := newTestNode(t, nil)
	r := tn.do("GET", "/_test/panic", "", nil)
	wantErr(t, r, 500, ErrCodeUnknown)
	if strings.Contains(string(r.Raw), "boom") {
		t.Errorf("internal detail leaked: %s", r.Raw)
	}
}

func TestDeferredReplyAndCancel(t *testing.T) {
	var waiting []*Call
	withTestRoutes(t, Route{Method: "GET", Pattern: "/_test/wait", Handle: func(c *Call) {
		waiting = append(waiting, c)
		c.OnCancel(func() { c.Node().Logger().Debug("cancelled") })
		c.Node().AfterFunc(30*time.Second, func() { c.Reply(200, map[string]string{"by": "timer"}) })
	}})
	tn := newTestNode(t, nil)

	r1, _ := tn.start("GET", "/_test/wait", "", nil)
	r2, c2 := tn.start("GET", "/_test/wait", "", nil)
	if r1.Answered || r2.Answered {
		t.Fatal("answered before the timer")
	}
	cancelled := false
	c2.OnCancel(func() { cancelled = true })
	c2.Cancel()
	if !cancelled || !c2.Done() {
		t.Fatal("cancel hooks did not run")
	}
	tn.clock.Advance(29 * time.Second)
	if r1.Answered {
		t.Fatal("answered early")
	}
	tn.clock.Advance(time.Second)
	if !r1.Answered || r1.str("by") != "timer" {
		t.Fatalf("timer reply: %+v", r1)
	}
	if r2.Answered {
		t.Fatal("cancelled call was answered")
	}
	waiting[0].Reply(500, nil) // a second reply is ignored
	if r1.Status != 200 {
		t.Fatal("second reply overwrote the first")
	}
	if len(tn.pending) != 0 {
		t.Fatalf("%d calls still pending", len(tn.pending))
	}
}

func TestStopCancelsPending(t *testing.T) {
	withTestRoutes(t, Route{Method: "GET", Pattern: "/_test/wait", Handle: func(c *Call) {}})
	tn := newTestNode(t, nil)
	r, c := tn.start("GET", "/_test/wait", "", nil)
	hook := false
	c.OnCancel(func() { hook = true })
	stopped := false
	tn.OnStop(func() { stopped = true })
	tn.Stop()
	wantErr(t, *r, 503, ErrCodeUnknown)
	if !hook || !stopped {
		t.Fatalf("hook=%v stopped=%v", hook, stopped)
	}
	wantErr(t, tn.do("GET", "/_matrix/client/versions", "", nil), 503, ErrCodeUnknown)
}

func TestRateLimits(t *testing.T) {
	tn := newTestNode(t, func(c *Config) {
		c.RateLimit = RateLimitConfig{Enabled: true,
			PerIP:   BucketConfig{PerSecond: 1, Burst: 3},
			PerUser: BucketConfig{PerSecond: 1, Burst: 2}}
	})
	// Per IP: three login-flow requests pass, the fourth is limited.
	for i := 0; i < 3; i++ {
		if r := tn.do("GET", "/_matrix/client/v3/login", "", nil); r.Status != 200 {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	r := tn.do("GET", "/_matrix/client/v3/login", "", nil)
	wantErr(t, r, 429, ErrCodeLimitExceeded)
	if ms, _ := r.Body["retry_after_ms"].(float64); ms != 1000 {
		t.Fatalf("retry_after_ms = %v, want 1000", r.Body["retry_after_ms"])
	}
	// /versions is exempt.
	if r := tn.do("GET", "/_matrix/client/versions", "", nil); r.Status != 200 {
		t.Fatalf("versions limited: %d", r.Status)
	}
	tn.clock.Advance(time.Second)
	if r := tn.do("GET", "/_matrix/client/v3/login", "", nil); r.Status != 200 {
		t.Fatalf("after refill: %d", r.Status)
	}
	tn.clock.Advance(time.Hour)

	// Per user, independent of IP buckets (use a fresh IP each time).
	_, tok, _ := tn.register("alice", "pw")
	tn.clock.Advance(time.Hour)
	codes := []int{}
	for i := 0; i < 3; i++ {
		req := &Request{Method: "GET", Path: "/_matrix/client/v3/account/whoami", AccessToken: tok, RemoteIP: "198.51.100." + string(rune('1'+i))}
		tn.Dispatch(req, func(r Response) { codes = append(codes, r.Status) })
	}
	if len(codes) != 3 || codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("per-user codes %v, want [200 200 429]", codes)
	}
}

func TestVersionsAndCapabilities(t *testing.T) {
	tn := newTestNode(t, nil)
	r := tn.do("GET", "/_matrix/client/versions", "", nil)
	if r.Status != 200 || !strings.Contains(string(r.Raw), `"v1.10"`) {
		t.Fatalf("versions: %d %s", r.Status, r.Raw)
	}
	_, tok, _ := tn.register("bob", "pw")
	r = tn.do("GET", "/_matrix/client/v3/capabilities", tok, nil)
	caps, _ := r.Body["capabilities"].(map[string]any)
	rv, _ := caps["m.room_versions"].(map[string]any)
	avail, _ := rv["available"].(map[string]any)
	if r.Status != 200 || rv["default"] != "10" || avail["10"] != "stable" || avail["11"] != "stable" || avail["12"] != "stable" {
		t.Fatalf("capabilities: %d %s", r.Status, r.Raw)
	}
}

// MSC3079 "Versioning": /versions carries m.low_bandwidth while the CoAP
// front door is configured, and not otherwise.
func TestVersionsLowBandwidth(t *testing.T) {
	withCoAP := newTestNode(t, func(c *Config) { c.CoAPAddr = "127.0.0.1:5683" })
	r := withCoAP.do("GET", "/_matrix/client/versions", "", nil)
	lb, _ := r.Body["m.low_bandwidth"].(map[string]any)
	if lb["cbor_enum_version"] != float64(1) || lb["coap_enum_version"] != float64(1) || lb["observe"] != float64(1) {
		t.Fatalf("with CoAP: m.low_bandwidth missing or wrong: %s", r.Raw)
	}
	without := newTestNode(t, func(c *Config) { c.CoAPAddr = "" })
	r = without.do("GET", "/_matrix/client/versions", "", nil)
	if _, has := r.Body["m.low_bandwidth"]; has {
		t.Fatalf("without CoAP: m.low_bandwidth advertised: %s", r.Raw)
	}
}

func TestFailedTokensCountAgainstIP(t *testing.T) {
	tn := newTestNode(t, func(c *Config) {
		c.RateLimit = RateLimitConfig{Enabled: true,
			PerIP:   BucketConfig{PerSecond: 1, Burst: 2},
			PerUser: BucketConfig{PerSecond: 1, Burst: 100}}
	})
	wantErr(t, tn.do("GET", v3+"/account/whoami", "mxm_guess1", nil), 401, ErrCodeUnknownToken)
	wantErr(t, tn.do("GET", v3+"/account/whoami", "mxm_guess2", nil), 401, ErrCodeUnknownToken)
	wantErr(t, tn.do("GET", v3+"/account/whoami", "mxm_guess3", nil), 429, ErrCodeLimitExceeded)
}
