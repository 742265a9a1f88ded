package homeserver

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"time"
)

// registerRequest is the body of POST /register.
// Spec: client-server-api "POST /_matrix/client/v3/register".
type registerRequest struct {
	Username                 string    `json:"username"`
	Password                 string    `json:"password"`
	DeviceID                 string    `json:"device_id"`
	InitialDeviceDisplayName *string   `json:"initial_device_display_name"`
	InhibitLogin             bool      `json:"inhibit_login"`
	Auth                     *authDict `json:"auth"`
}

func handleRegister(c *Call) {
	n := c.Node()
	if kind := c.Req.Query.Get("kind"); kind != "" && kind != "user" {
		c.Fail(Errorf(403, ErrCodeForbidden, "guest access is not supported"))
		return
	}
	if !n.cfg.Registration.Open {
		c.Fail(Errorf(403, ErrCodeForbidden, "registration is disabled on this server"))
		return
	}
	var req registerRequest
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	if req.Username == "" {
		req.Username = n.randomLocalpart()
	}
	// Check the name before the UIA round trip, so clients learn of a
	// taken or bad name at once (as other servers do).
	if err := n.usernameAvailable(req.Username); err != nil {
		c.Fail(err)
		return
	}
	if req.Auth == nil || req.Auth.Type != stageDummy {
		var failure *Error
		if req.Auth != nil && req.Auth.Type != "" {
			failure = Errorf(401, ErrCodeUnrecognized, "unsupported authentication type %q", req.Auth.Type)
		}
		session := ""
		if req.Auth != nil {
			session = req.Auth.Session
		}
		c.Fail(n.uiaChallenge(stageDummy, session, failure))
		return
	}
	if req.Password != "" {
		if err := checkPasswordShape(req.Password); err != nil {
			c.Fail(err)
			return
		}
	}
	register := func(hash string) {
		userID, err := n.createAccount(req.Username, hash, false, "")
		if err != nil {
			c.Fail(err)
			return
		}
		n.log.Info("account registered", "user_id", userID)
		resp := map[string]any{"user_id": userID, "home_server": n.cfg.ServerName}
		if !req.InhibitLogin {
			token, deviceID, err := n.newSession(userID, req.DeviceID, req.InitialDeviceDisplayName, c.Req.RemoteIP)
			if err != nil {
				c.Fail(err)
				return
			}
			resp["access_token"], resp["device_id"] = token, deviceID
		}
		c.Reply(200, resp)
	}
	if req.Password == "" {
		register("") // an account without a password
		return
	}
	n.hashForCall(c, req.Password, register)
}

// usernameAvailable validates a requested localpart and checks it is free.
func (n *Node) usernameAvailable(localpart string) error {
	if err := ValidateLocalpart(localpart, n.cfg.ServerName); err != nil {
		return err
	}
	userID := UserID(localpart, n.cfg.ServerName)
	if _, err := n.store.Account(userID); err == nil {
		return Errorf(400, ErrCodeUserInUse, "user ID %s is already taken", userID)
	} else if !isNotFound(err) {
		return err
	}
	return nil
}

// randomLocalpart names an account registered without a username.
func (n *Node) randomLocalpart() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = alphabet[n.rng.Uint64()%uint64(len(alphabet))]
	}
	return "u" + string(b)
}

// handleRegisterAvailable: spec client-server-api
// "GET /_matrix/client/v3/register/available".
func handleRegisterAvailable(c *Call) {
	n := c.Node()
	name := c.Req.Query.Get("username")
	if name == "" {
		c.Fail(Errorf(400, ErrCodeMissingParam, "missing username parameter"))
		return
	}
	if err := n.usernameAvailable(name); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]bool{"available": true})
}

// nonceLifetime is how long a shared-secret registration nonce stays
// valid (Synapse uses 60 s).
const nonceLifetime = 60 * time.Second

// handleAdminRegisterNonce: GET /_synapse/admin/v1/register. Synapse admin
// API "Shared-Secret Registration".
func handleAdminRegisterNonce(c *Call) {
	n := c.Node()
	if n.cfg.Registration.SharedSecret == "" {
		c.Fail(Errorf(400, ErrCodeUnknown, "shared secret registration is not enabled"))
		return
	}
	now := n.Now()
	for k, exp := range n.nonces {
		if !now.Before(exp) {
			delete(n.nonces, k)
		}
	}
	if len(n.nonces) >= 1000 {
		c.Fail(Errorf(429, ErrCodeLimitExceeded, "too many outstanding nonces").With("retry_after_ms", nonceLifetime.Milliseconds()))
		return
	}
	var b [16]byte
	_, _ = n.rng.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	n.nonces[nonce] = now.Add(nonceLifetime)
	c.Reply(200, map[string]string{"nonce": nonce})
}

type adminRegisterRequest struct {
	Nonce       string `json:"nonce"`
	Username    string `json:"username"`
	DisplayName string `json:"displayname"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	UserType    string `json:"user_type"`
	MAC         string `json:"mac"`
}

// AdminRegisterMAC computes the shared-secret registration MAC: hex
// HMAC-SHA1 keyed by the secret over
// nonce NUL username NUL password NUL ("admin"|"notadmin") [NUL user_type].
func AdminRegisterMAC(secret, nonce, username, password string, admin bool, userType string) string {
	m := hmac.New(sha1.New, []byte(secret))
	adm := "notadmin"
	if admin {
		adm = "admin"
	}
	m.Write([]byte(nonce + "\x00" + username + "\x00" + password + "\x00" + adm))
	if userType != "" {
		m.Write([]byte("\x00" + userType))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// handleAdminRegister: POST /_synapse/admin/v1/register.
func handleAdminRegister(c *Call) {
	n := c.Node()
	secret := n.cfg.Registration.SharedSecret
	if secret == "" {
		c.Fail(Errorf(400, ErrCodeUnknown, "shared secret registration is not enabled"))
		return
	}
	var req adminRegisterRequest
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	exp, ok := n.nonces[req.Nonce]
	if !ok || !n.Now().Before(exp) {
		delete(n.nonces, req.Nonce)
		c.Fail(Errorf(400, ErrCodeUnknown, "unrecognised nonce"))
		return
	}
	delete(n.nonces, req.Nonce) // single use
	want := AdminRegisterMAC(secret, req.Nonce, req.Username, req.Password, req.Admin, req.UserType)
	got, err := hex.DecodeString(req.MAC)
	wantRaw, _ := hex.DecodeString(want)
	if err != nil || !hmac.Equal(got, wantRaw) {
		c.Fail(Errorf(403, ErrCodeForbidden, "HMAC incorrect"))
		return
	}
	if err := n.usernameAvailable(req.Username); err != nil {
		c.Fail(err)
		return
	}
	if err := checkPasswordShape(req.Password); err != nil {
		c.Fail(err)
		return
	}
	n.hashForCall(c, req.Password, func(hash string) {
		userID, err := n.createAccount(req.Username, hash, req.Admin, req.DisplayName)
		if err != nil {
			c.Fail(err)
			return
		}
		n.log.Info("account registered with shared secret", "user_id", userID, "admin", req.Admin)
		token, deviceID, err := n.newSession(userID, "", nil, c.Req.RemoteIP)
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{"user_id": userID, "access_token": token, "device_id": deviceID,
			"home_server": n.cfg.ServerName})
	})
}
