package homeserver

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Login and UIA stage types. Spec: client-server-api "Authentication types".
const (
	stagePassword = "m.login.password"
	stageDummy    = "m.login.dummy"
	idTypeUser    = "m.id.user"
)

// authDict is the "auth" object of a user-interactive request, and also the
// body shape of /login (type, identifier, password).
type authDict struct {
	Type       string      `json:"type"`
	Session    string      `json:"session"`
	Password   string      `json:"password"`
	Identifier *identifier `json:"identifier"`
	// User is the deprecated top-level user field of m.login.password.
	User string `json:"user"`
}

type identifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

// uiaChallenge is the 401 that starts or repeats a user-interactive
// authentication with a single-stage flow. Spec: client-server-api
// "User-interactive authentication API". When failure is set its errcode
// and message are included, as the spec asks for a failed stage.
//
// NOTSPEC: every flow this server offers has one stage, so the session ID
// carries no server-side state; a completed stage is checked on the
// request that carries it.
func (n *Node) uiaChallenge(stage string, session string, failure *Error) *Error {
	if session == "" {
		var b [16]byte
		_, _ = n.rng.Read(b[:])
		session = base64.RawURLEncoding.EncodeToString(b[:])
	}
	e := &Error{Status: 401, Code: "", Extra: map[string]any{
		"flows":     []map[string]any{{"stages": []string{stage}}},
		"params":    map[string]any{},
		"session":   session,
		"completed": []string{},
	}}
	if failure != nil {
		e.Code, e.Message = failure.Code, failure.Message
	}
	return e
}

// resolveUser turns an m.id.user identifier (a localpart or a full user ID
// on this server) into a user ID, lower-casing the localpart as accounts
// are registered lower-case.
func (n *Node) resolveUser(a *authDict) (string, error) {
	user := a.User
	if a.Identifier != nil {
		if a.Identifier.Type != idTypeUser {
			return "", Errorf(400, ErrCodeUnknown, "unsupported identifier type %q", a.Identifier.Type)
		}
		user = a.Identifier.User
	}
	if user == "" {
		return "", Errorf(400, ErrCodeMissingParam, "missing user identifier")
	}
	local := user
	if strings.HasPrefix(user, "@") {
		l, server, ok := strings.Cut(user[1:], ":")
		if !ok || server != n.cfg.ServerName {
			return "", Errorf(403, ErrCodeForbidden, "invalid username or password")
		}
		local = l
	}
	return UserID(strings.ToLower(local), n.cfg.ServerName), nil
}

// checkPassword verifies userID's password off the loop and continues with
// then(err) inside it: nil on success, 403 M_FORBIDDEN for an unknown
// user or wrong password, 403 M_USER_DEACTIVATED for a deactivated one.
func (n *Node) checkPassword(userID, password string, then func(error)) {
	acct, err := n.store.Account(userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		then(err)
		return
	}
	found := err == nil
	var ok bool
	cost := n.cfg.BcryptCost
	n.Offload(func() error {
		if found {
			ok = passwordMatches(acct.PasswordHash, password)
		} else {
			// Spend the same time on unknown users, so response times do
			// not tell which user IDs exist.
			passwordMatches(dummyHash(cost), password)
		}
		return nil
	}, func(err error) {
		switch {
		case err != nil:
			then(err)
		case !ok:
			then(Errorf(403, ErrCodeForbidden, "invalid username or password"))
		case acct.Deactivated:
			then(Errorf(403, ErrCodeUserDeactivated, "account is deactivated"))
		default:
			then(nil)
		}
	})
}

var (
	dummyMu     sync.Mutex
	dummyHashes = map[int]string{}
)

// dummyHash is a bcrypt hash of a password nobody knows, at cost, made
// once per cost and shared by all nodes in the process (safe off-loop).
func dummyHash(cost int) string {
	dummyMu.Lock()
	defer dummyMu.Unlock()
	h, ok := dummyHashes[cost]
	if !ok {
		b, _ := bcrypt.GenerateFromPassword([]byte("mxmesh: no such user"), cost)
		h = string(b)
		dummyHashes[cost] = h
	}
	return h
}

// requirePassword runs then once the call's auth dict proves the caller's
// own password (m.login.password UIA); otherwise it answers with the 401
// challenge. Used by device deletion and password change.
func (n *Node) requirePassword(c *Call, auth *authDict, then func()) {
	if auth == nil || auth.Type == "" {
		c.Fail(n.uiaChallenge(stagePassword, "", nil))
		return
	}
	if auth.Type != stagePassword {
		c.Fail(n.uiaChallenge(stagePassword, auth.Session,
			Errorf(401, ErrCodeUnrecognized, "unsupported authentication type %q", auth.Type)))
		return
	}
	userID := c.UserID
	if auth.Identifier != nil || auth.User != "" {
		u, err := n.resolveUser(auth)
		if err != nil || u != c.UserID {
			c.Fail(n.uiaChallenge(stagePassword, auth.Session,
				Errorf(403, ErrCodeForbidden, "authentication must be for the logged-in user")))
			return
		}
	}
	n.checkPassword(userID, auth.Password, func(err error) {
		if c.Done() {
			return
		}
		var apiErr *Error
		if errors.As(err, &apiErr) {
			c.Fail(n.uiaChallenge(stagePassword, auth.Session, apiErr))
			return
		}
		if err != nil {
			c.Fail(err)
			return
		}
		then()
	})
}
