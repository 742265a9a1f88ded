package homeserver

import (
	"strings"
	"testing"
	"time"
)

const v3 = "/_matrix/client/v3"

func TestRegisterClosedByDefault(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.Registration.Open = false })
	wantErr(t, tn.do("POST", v3+"/register", "", map[string]any{"username": "a", "password": "p",
		"auth": map[string]string{"type": "m.login.dummy"}}), 403, ErrCodeForbidden)
}

func TestRegisterUIAFlow(t *testing.T) {
	tn := newTestNode(t, nil)
	// No auth: 401 with the dummy flow and a session.
	r := tn.do("POST", v3+"/register", "", map[string]any{"username": "alice", "password": "secret"})
	if r.Status != 401 || r.str("session") == "" || !strings.Contains(string(r.Raw), `"m.login.dummy"`) {
		t.Fatalf("challenge: %d %s", r.Status, r.Raw)
	}
	if _, ok := r.Body["errcode"]; ok {
		t.Fatalf("first challenge carries an errcode: %s", r.Raw)
	}
	sess := r.str("session")
	// Complete it.
	r = tn.do("POST", v3+"/register", "", map[string]any{"username": "alice", "password": "secret",
		"initial_device_display_name": "phone",
		"auth":                        map[string]string{"type": "m.login.dummy", "session": sess}})
	if r.Status != 200 || r.str("user_id") != "@alice:test.local" || !strings.HasPrefix(r.str("access_token"), "mxm_") || r.str("device_id") == "" {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	// 256 bits of token: 43 unpadded base64 characters after the prefix.
	if got := len(strings.TrimPrefix(r.str("access_token"), "mxm_")); got != 43 {
		t.Fatalf("token has %d base64 chars, want 43", got)
	}
	tok := r.str("access_token")
	w := tn.do("GET", v3+"/account/whoami", tok, nil)
	if w.Status != 200 || w.str("user_id") != "@alice:test.local" || w.str("device_id") != r.str("device_id") {
		t.Fatalf("whoami: %d %s", w.Status, w.Raw)
	}
	d := tn.do("GET", v3+"/devices/"+r.str("device_id"), tok, nil)
	if d.str("display_name") != "phone" {
		t.Fatalf("device: %s", d.Raw)
	}
	// Taken, invalid.
	wantErr(t, tn.do("POST", v3+"/register", "", map[string]any{"username": "alice", "password": "x",
		"auth": map[string]string{"type": "m.login.dummy"}}), 400, ErrCodeUserInUse)
	for _, bad := range []string{"Alice", "al ice", "al:ice", "ünï", strings.Repeat("a", 250)} {
		wantErr(t, tn.do("POST", v3+"/register", "", map[string]any{"username": bad,
			"auth": map[string]string{"type": "m.login.dummy"}}), 400, ErrCodeInvalidUsername)
	}
	// Wrong stage type: 401 with an errcode.
	r = tn.do("POST", v3+"/register", "", map[string]any{"username": "bob",
		"auth": map[string]string{"type": "m.login.recaptcha"}})
	if r.Status != 401 || r.str("errcode") == "" || r.str("session") == "" {
		t.Fatalf("wrong stage: %d %s", r.Status, r.Raw)
	}
	// Guests are refused.
	wantErr(t, tn.do("POST", v3+"/register?kind=guest", "", map[string]any{}), 403, ErrCodeForbidden)
}

func TestRegisterInhibitLoginAndRandomName(t *testing.T) {
	tn := newTestNode(t, nil)
	r := tn.do("POST", v3+"/register", "", map[string]any{"username": "carol", "password": "pw",
		"inhibit_login": true, "auth": map[string]string{"type": "m.login.dummy"}})
	if r.Status != 200 || r.str("user_id") != "@carol:test.local" {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	if _, ok := r.Body["access_token"]; ok {
		t.Fatalf("inhibit_login returned a token: %s", r.Raw)
	}
	r = tn.do("POST", v3+"/register", "", map[string]any{"auth": map[string]string{"type": "m.login.dummy"}})
	if r.Status != 200 || !strings.HasSuffix(r.str("user_id"), ":test.local") || ValidateLocalpart(strings.TrimSuffix(r.str("user_id")[1:], ":test.local"), "test.local") != nil {
		t.Fatalf("random name: %d %s", r.Status, r.Raw)
	}
}

func TestRegisterAvailable(t *testing.T) {
	tn := newTestNode(t, nil)
	tn.register("dave", "pw")
	if r := tn.do("GET", v3+"/register/available?username=erin", "", nil); r.Status != 200 || r.Body["available"] != true {
		t.Fatalf("available: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", v3+"/register/available?username=dave", "", nil), 400, ErrCodeUserInUse)
	wantErr(t, tn.do("GET", v3+"/register/available?username=D", "", nil), 400, ErrCodeInvalidUsername)
	wantErr(t, tn.do("GET", v3+"/register/available", "", nil), 400, ErrCodeMissingParam)
}

func TestLoginLogout(t *testing.T) {
	tn := newTestNode(t, nil)
	uid, tok1, _ := tn.register("frank", "hunter2")

	r := tn.do("GET", v3+"/login", "", nil)
	if r.Status != 200 || !strings.Contains(string(r.Raw), `"m.login.password"`) {
		t.Fatalf("flows: %s", r.Raw)
	}
	login := func(ident map[string]any, pw string, extra map[string]any) testResp {
		body := map[string]any{"type": "m.login.password", "password": pw}
		for k, v := range ident {
			body[k] = v
		}
		for k, v := range extra {
			body[k] = v
		}
		return tn.do("POST", v3+"/login", "", body)
	}
	byID := map[string]any{"identifier": map[string]string{"type": "m.id.user", "user": uid}}
	byLocal := map[string]any{"identifier": map[string]string{"type": "m.id.user", "user": "FRANK"}}
	legacy := map[string]any{"user": "frank"}

	r = login(byID, "hunter2", map[string]any{"device_id": "LAPTOP"})
	if r.Status != 200 || r.str("user_id") != uid || r.str("device_id") != "LAPTOP" {
		t.Fatalf("login: %d %s", r.Status, r.Raw)
	}
	tok2 := r.str("access_token")
	if r := login(byLocal, "hunter2", nil); r.Status != 200 {
		t.Fatalf("login by localpart: %d %s", r.Status, r.Raw)
	}
	if r := login(legacy, "hunter2", nil); r.Status != 200 {
		t.Fatalf("legacy login: %d %s", r.Status, r.Raw)
	}
	wantErr(t, login(byID, "wrong", nil), 403, ErrCodeForbidden)
	wantErr(t, login(map[string]any{"user": "nobody"}, "hunter2", nil), 403, ErrCodeForbidden)
	wantErr(t, login(map[string]any{"user": "@frank:elsewhere"}, "hunter2", nil), 403, ErrCodeForbidden)
	wantErr(t, login(map[string]any{"identifier": map[string]string{"type": "m.id.phone"}}, "x", nil), 400, ErrCodeUnknown)
	wantErr(t, tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.token", "token": "x"}), 400, ErrCodeUnknown)

	// Logging in again with the same device ID revokes its old token.
	r = login(byID, "hunter2", map[string]any{"device_id": "LAPTOP"})
	tok3 := r.str("access_token")
	wantErr(t, tn.do("GET", v3+"/account/whoami", tok2, nil), 401, ErrCodeUnknownToken)

	// Logout kills only that token.
	if r := tn.do("POST", v3+"/logout", tok3, nil); r.Status != 200 {
		t.Fatalf("logout: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", v3+"/account/whoami", tok3, nil), 401, ErrCodeUnknownToken)
	if r := tn.do("GET", v3+"/account/whoami", tok1, nil); r.Status != 200 {
		t.Fatalf("other device logged out: %d", r.Status)
	}
	// logout/all kills every token.
	if r := tn.do("POST", v3+"/logout/all", tok1, ""); r.Status != 200 {
		t.Fatalf("logout/all: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", v3+"/account/whoami", tok1, nil), 401, ErrCodeUnknownToken)
	devs, _ := tn.store.Devices(uid)
	if len(devs) != 0 {
		t.Fatalf("%d devices left after logout/all", len(devs))
	}
}

func TestDevices(t *testing.T) {
	tn := newTestNode(t, nil)
	uid, tok, dev1 := tn.register("gina", "pw")
	r := tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "gina", "password": "pw", "device_id": "SECOND"})
	tok2 := r.str("access_token")

	tn.clock.Advance(time.Minute)
	r = tn.do("GET", v3+"/devices", tok, nil)
	list, _ := r.Body["devices"].([]any)
	if r.Status != 200 || len(list) != 2 {
		t.Fatalf("devices: %d %s", r.Status, r.Raw)
	}
	if r := tn.do("PUT", v3+"/devices/SECOND", tok, map[string]string{"display_name": "tablet"}); r.Status != 200 {
		t.Fatalf("rename: %d %s", r.Status, r.Raw)
	}
	if r := tn.do("GET", v3+"/devices/SECOND", tok, nil); r.str("display_name") != "tablet" || r.str("device_id") != "SECOND" {
		t.Fatalf("get: %s", r.Raw)
	}
	wantErr(t, tn.do("GET", v3+"/devices/NOPE", tok, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("PUT", v3+"/devices/NOPE", tok, map[string]string{"display_name": "x"}), 404, ErrCodeNotFound)
	wantErr(t, tn.do("DELETE", v3+"/devices/NOPE", tok, nil), 404, ErrCodeNotFound)

	// Delete needs UIA with the caller's password.
	r = tn.do("DELETE", v3+"/devices/SECOND", tok, nil)
	if r.Status != 401 || !strings.Contains(string(r.Raw), `"m.login.password"`) {
		t.Fatalf("delete without auth: %d %s", r.Status, r.Raw)
	}
	sess := r.str("session")
	r = tn.do("DELETE", v3+"/devices/SECOND", tok, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": sess, "password": "bad",
		"identifier": map[string]string{"type": "m.id.user", "user": uid}}})
	if r.Status != 401 || r.str("errcode") != ErrCodeForbidden || r.str("session") != sess {
		t.Fatalf("delete with wrong password: %d %s", r.Status, r.Raw)
	}
	r = tn.do("DELETE", v3+"/devices/SECOND", tok, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": sess, "password": "pw",
		"identifier": map[string]string{"type": "m.id.user", "user": uid}}})
	if r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", v3+"/account/whoami", tok2, nil), 401, ErrCodeUnknownToken)

	// Another user's password does not authorise.
	tn.register("hank", "hpw")
	r = tn.do("POST", v3+"/delete_devices", tok, map[string]any{"devices": []string{dev1}, "auth": map[string]any{
		"type": "m.login.password", "password": "hpw", "user": "hank"}})
	if r.Status != 401 || r.str("errcode") != ErrCodeForbidden {
		t.Fatalf("delete_devices with another user's password: %d %s", r.Status, r.Raw)
	}
	r = tn.do("POST", v3+"/delete_devices", tok, map[string]any{"devices": []string{dev1, "UNKNOWN"}, "auth": map[string]any{
		"type": "m.login.password", "password": "pw"}})
	if r.Status != 200 {
		t.Fatalf("delete_devices: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", v3+"/account/whoami", tok, nil), 401, ErrCodeUnknownToken)
}

func TestPasswordChange(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("ivy", "old")
	other := tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "ivy", "password": "old"}).str("access_token")

	r := tn.do("POST", v3+"/account/password", tok, map[string]any{"new_password": "new"})
	if r.Status != 401 || r.str("session") == "" {
		t.Fatalf("no auth: %d %s", r.Status, r.Raw)
	}
	r = tn.do("POST", v3+"/account/password", tok, map[string]any{"new_password": "new",
		"auth": map[string]any{"type": "m.login.password", "user": "ivy", "password": "old"}})
	if r.Status != 200 {
		t.Fatalf("change: %d %s", r.Status, r.Raw)
	}
	// Other devices are logged out by default; this one stays.
	wantErr(t, tn.do("GET", v3+"/account/whoami", other, nil), 401, ErrCodeUnknownToken)
	if r := tn.do("GET", v3+"/account/whoami", tok, nil); r.Status != 200 {
		t.Fatalf("own device logged out: %d", r.Status)
	}
	wantErr(t, tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "ivy", "password": "old"}), 403, ErrCodeForbidden)
	if r := tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "ivy", "password": "new"}); r.Status != 200 {
		t.Fatalf("login with new password: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("POST", v3+"/account/password", tok, map[string]any{"new_password": strings.Repeat("x", 100),
		"auth": map[string]any{"type": "m.login.password", "password": "new"}}), 400, ErrCodeInvalidParam)
}

func TestSharedSecretRegistration(t *testing.T) {
	off := newTestNode(t, nil)
	wantErr(t, off.do("GET", "/_synapse/admin/v1/register", "", nil), 400, ErrCodeUnknown)

	tn := newTestNode(t, func(c *Config) {
		c.Registration.Open = false
		c.Registration.SharedSecret = "s3cret"
	})
	nonce := func() string {
		r := tn.do("GET", "/_synapse/admin/v1/register", "", nil)
		if r.Status != 200 || len(r.str("nonce")) != 32 {
			t.Fatalf("nonce: %d %s", r.Status, r.Raw)
		}
		return r.str("nonce")
	}
	reg := func(nonce, user, pw string, admin bool, mac string) testResp {
		return tn.do("POST", "/_synapse/admin/v1/register", "", map[string]any{
			"nonce": nonce, "username": user, "password": pw, "admin": admin, "mac": mac})
	}
	n1 := nonce()
	wantErr(t, reg(n1, "root", "pw", true, AdminRegisterMAC("wrong", n1, "root", "pw", true, "")), 403, ErrCodeForbidden)
	// A nonce is single-use, even after a failure.
	wantErr(t, reg(n1, "root", "pw", true, AdminRegisterMAC("s3cret", n1, "root", "pw", true, "")), 400, ErrCodeUnknown)

	n2 := nonce()
	r := reg(n2, "root", "pw", true, AdminRegisterMAC("s3cret", n2, "root", "pw", true, ""))
	if r.Status != 200 || r.str("user_id") != "@root:test.local" || r.str("access_token") == "" {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	acct, err := tn.store.Account("@root:test.local")
	if err != nil || !acct.Admin {
		t.Fatalf("account: %+v %v", acct, err)
	}
	// The mac covers the admin flag.
	n3 := nonce()
	wantErr(t, reg(n3, "eve", "pw", true, AdminRegisterMAC("s3cret", n3, "eve", "pw", false, "")), 403, ErrCodeForbidden)
	// Nonces expire after 60 s.
	n4 := nonce()
	tn.clock.Advance(61 * time.Second)
	wantErr(t, reg(n4, "eve", "pw", false, AdminRegisterMAC("s3cret", n4, "eve", "pw", false, "")), 400, ErrCodeUnknown)
	n5 := nonce()
	wantErr(t, reg(n5, "root", "pw", false, AdminRegisterMAC("s3cret", n5, "root", "pw", false, "")), 400, ErrCodeUserInUse)
}

// A known vector: Synapse's documented algorithm, computed independently
// with Python's hmac module:
// hmac.new(b"secret", b"abc\x00bob\x00pw\x00notadmin", hashlib.sha1).hexdigest()
func TestAdminRegisterMACVector(t *testing.T) {
	got := AdminRegisterMAC("secret", "abc", "bob", "pw", false, "")
	if got != adminMACVector {
		t.Fatalf("mac = %s, want %s", got, adminMACVector)
	}
}

func TestCreateAccountForCLI(t *testing.T) {
	tn := newTestNode(t, nil)
	uid, err := CreateAccount(tn.store, tn.cfg, "op", "pw", true, tn.Now())
	if err != nil || uid != "@op:test.local" {
		t.Fatalf("create: %q %v", uid, err)
	}
	if _, err := CreateAccount(tn.store, tn.cfg, "op", "pw", false, tn.Now()); err == nil || !strings.Contains(err.Error(), ErrCodeUserInUse) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := CreateAccount(tn.store, tn.cfg, "Op!", "pw", false, tn.Now()); err == nil {
		t.Fatal("invalid name accepted")
	}
	r := tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "op", "password": "pw"})
	if r.Status != 200 {
		t.Fatalf("login as CLI-created user: %d %s", r.Status, r.Raw)
	}
	if w := tn.do("GET", v3+"/account/whoami", r.str("access_token"), nil); w.Status != 200 {
		t.Fatal("whoami")
	}
}

func TestAccountCreatedHook(t *testing.T) {
	tn := newTestNode(t, nil)
	var got []string
	tn.OnAccountCreated(func(u, d string) error { got = append(got, u+"="+d); return nil })
	tn.register("jo", "pw")
	if len(got) != 1 || got[0] != "@jo:test.local=jo" {
		t.Fatalf("hook calls: %v", got)
	}
}

const adminMACVector = "8ea9b87daa4e529ce4a0832f09be19bbe837a0af"

func TestDeviceLastSeen(t *testing.T) {
	tn := newTestNode(t, nil)
	uid, tok, dev := tn.register("kim", "pw")
	tn.clock.Advance(10 * time.Minute)
	tn.do("GET", v3+"/account/whoami", tok, nil)
	d, err := tn.store.Device(uid, dev)
	if err != nil || d.LastSeenTS != tn.Now().UnixMilli() || d.LastSeenIP != "192.0.2.1" {
		t.Fatalf("last seen: %+v %v", d, err)
	}
	if r := tn.do("GET", v3+"/account/3pid", tok, nil); r.Status != 200 || string(r.Raw) != `{"threepids":[]}` {
		t.Fatalf("3pid: %d %s", r.Status, r.Raw)
	}
}

func TestDeactivate(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("lee", "pw")
	var hooked []string
	tn.OnAccountDeactivated(func(u string) error { hooked = append(hooked, u); return nil })
	if r := tn.do("POST", v3+"/account/deactivate", tok, map[string]any{}); r.Status != 401 {
		t.Fatalf("without auth: %d %s", r.Status, r.Raw)
	}
	r := tn.do("POST", v3+"/account/deactivate", tok, map[string]any{"auth": map[string]any{"type": "m.login.password", "password": "pw"}})
	if r.Status != 200 || r.str("id_server_unbind_result") != "no-support" {
		t.Fatalf("deactivate: %d %s", r.Status, r.Raw)
	}
	if len(hooked) != 1 || hooked[0] != "@lee:test.local" {
		t.Fatalf("hooks: %v", hooked)
	}
	wantErr(t, tn.do("GET", v3+"/account/whoami", tok, nil), 401, ErrCodeUnknownToken)
	wantErr(t, tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "lee", "password": "pw"}), 403, ErrCodeUserDeactivated)
	wantErr(t, tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "lee", "password": "no"}), 403, ErrCodeForbidden)
	wantErr(t, tn.do("POST", v3+"/register", "", map[string]any{"username": "lee", "password": "pw",
		"auth": map[string]string{"type": "m.login.dummy"}}), 400, ErrCodeUserInUse)
}
