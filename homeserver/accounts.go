package homeserver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// maxUserIDBytes is the limit on a full user ID. Spec: appendices "User
// Identifiers" (255 bytes including "@" and the domain).
const maxUserIDBytes = 255

func accountRoutes(n *Node) ([]Route, error) {
	const v3 = "/_matrix/client/v3"
	return []Route{
		{Method: "GET", Pattern: v3 + "/register/available", Handle: handleRegisterAvailable},
		{Method: "POST", Pattern: v3 + "/register", Handle: handleRegister},
		{Method: "GET", Pattern: "/_synapse/admin/v1/register", Handle: handleAdminRegisterNonce},
		{Method: "POST", Pattern: "/_synapse/admin/v1/register", Handle: handleAdminRegister},
		{Method: "GET", Pattern: v3 + "/login", Handle: handleLoginFlows},
		{Method: "POST", Pattern: v3 + "/login", Handle: handleLogin},
		{Method: "POST", Pattern: v3 + "/logout", Auth: AuthUser, Handle: handleLogout},
		{Method: "POST", Pattern: v3 + "/logout/all", Auth: AuthUser, Handle: handleLogoutAll},
		{Method: "GET", Pattern: v3 + "/account/whoami", Auth: AuthUser, Handle: handleWhoami},
		{Method: "POST", Pattern: v3 + "/account/password", Auth: AuthUser, Handle: handlePasswordChange},
		{Method: "GET", Pattern: v3 + "/devices", Auth: AuthUser, Handle: handleDevices},
		{Method: "GET", Pattern: v3 + "/devices/{deviceId}", Auth: AuthUser, Handle: handleDeviceGet},
		{Method: "PUT", Pattern: v3 + "/devices/{deviceId}", Auth: AuthUser, Handle: handleDevicePut},
		{Method: "DELETE", Pattern: v3 + "/devices/{deviceId}", Auth: AuthUser, Handle: handleDeviceDelete},
		{Method: "POST", Pattern: v3 + "/delete_devices", Auth: AuthUser, Handle: handleDeleteDevices},
		{Method: "GET", Pattern: v3 + "/account/3pid", Auth: AuthUser, Handle: handleThreePIDs},
		{Method: "POST", Pattern: v3 + "/account/deactivate", Auth: AuthUser, Handle: handleDeactivate},
	}, nil
}

// ValidateLocalpart checks a localpart requested for a new account.
// Spec: appendices "User Identifiers": new localparts use only
// a-z 0-9 . _ = - / +, and the whole ID is at most 255 bytes.
func ValidateLocalpart(localpart, serverName string) error {
	if localpart == "" {
		return Errorf(400, ErrCodeInvalidUsername, "username must not be empty")
	}
	for _, r := range localpart {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._=-/+", r)) {
			return Errorf(400, ErrCodeInvalidUsername, "username may only contain a-z, 0-9 and ._=-/+ (got %q)", r)
		}
	}
	if len("@"+localpart+":"+serverName) > maxUserIDBytes {
		return Errorf(400, ErrCodeInvalidUsername, "user ID would be longer than %d bytes", maxUserIDBytes)
	}
	return nil
}

// UserID builds "@localpart:server".
func UserID(localpart, serverName string) string { return "@" + localpart + ":" + serverName }

// CreateAccount validates and stores a new account with a bcrypt-hashed
// password (empty: no password login). It is what `mxmesh user add` uses;
// it works against a store another process (the server) has open.
func CreateAccount(st *store.Store, cfg *Config, localpart, password string, admin bool, now time.Time) (string, error) {
	if err := ValidateLocalpart(localpart, cfg.ServerName); err != nil {
		return "", err
	}
	hash := ""
	if password != "" {
		var err error
		if hash, err = HashPassword(password, cfg.BcryptCost); err != nil {
			return "", err
		}
	}
	userID := UserID(localpart, cfg.ServerName)
	err := st.CreateAccount(store.Account{UserID: userID, PasswordHash: hash, Admin: admin, CreatedTS: now.UnixMilli()})
	if errors.Is(err, store.ErrExists) {
		return "", Errorf(400, ErrCodeUserInUse, "user ID %s is already taken", userID)
	}
	if err != nil {
		return "", err
	}
	return userID, nil
}

// OnAccountCreated registers f to run (inside the loop) after the node
// creates an account through the API, with the account's initial display
// name (its localpart unless one was given). Accounts made by
// `mxmesh user add` do not pass through here: treat a missing profile as
// displayname = localpart.
func (n *Node) OnAccountCreated(f func(userID, displayName string) error) {
	n.accountHooks = append(n.accountHooks, f)
}

// OnAccountDeactivated registers f to run (inside the loop) after an
// account is deactivated and its devices deleted, so that rooms can make
// the user leave.
func (n *Node) OnAccountDeactivated(f func(userID string) error) {
	n.deactivateHooks = append(n.deactivateHooks, f)
}

// createAccount stores an account whose password is already hashed and
// runs the OnAccountCreated hooks.
func (n *Node) createAccount(localpart, hash string, admin bool, displayName string) (string, error) {
	userID := UserID(localpart, n.cfg.ServerName)
	err := n.store.CreateAccount(store.Account{UserID: userID, PasswordHash: hash, Admin: admin, CreatedTS: n.Now().UnixMilli()})
	if errors.Is(err, store.ErrExists) {
		return "", Errorf(400, ErrCodeUserInUse, "user ID %s is already taken", userID)
	}
	if err != nil {
		return "", err
	}
	if displayName == "" {
		displayName = localpart
	}
	for _, f := range n.accountHooks {
		if err := f(userID, displayName); err != nil {
			return "", fmt.Errorf("account created hook for %s: %w", userID, err)
		}
	}
	return userID, nil
}

// newSession gives (userID, deviceID) a fresh access token, creating the
// device if needed; re-using a device ID revokes its previous token. An
// empty deviceID gets a random one.
func (n *Node) newSession(userID, deviceID string, displayName *string, ip string) (token, devID string, err error) {
	if deviceID == "" {
		deviceID = n.newDeviceID()
	} else if old, err := n.store.Device(userID, deviceID); err == nil {
		n.forgetTokens([]string{old.TokenHash})
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", "", err
	}
	token = n.newToken()
	now := n.Now().UnixMilli()
	err = n.store.PutDevice(store.Device{UserID: userID, DeviceID: deviceID, DisplayName: displayName,
		TokenHash: tokenHash(token), CreatedTS: now, LastSeenTS: now, LastSeenIP: ip})
	if err != nil {
		return "", "", err
	}
	return token, deviceID, nil
}

// deleteDevices removes devices (with their tokens) and evicts the tokens
// from the cache.
func (n *Node) deleteDevices(userID string, deviceIDs []string) error {
	hashes, err := n.store.DeleteDevices(userID, deviceIDs)
	if err != nil {
		return err
	}
	n.forgetTokens(hashes)
	if m := e2eeOf(n); m != nil {
		return m.devicesDeleted(userID, deviceIDs)
	}
	return nil
}

// deleteOtherDevices removes every device of userID but except ("" for
// all of them), with their tokens.
func (n *Node) deleteOtherDevices(userID, except string) error {
	devs, err := n.store.Devices(userID)
	if err != nil {
		return err
	}
	var ids []string
	for _, d := range devs {
		if d.DeviceID != except {
			ids = append(ids, d.DeviceID)
		}
	}
	return n.deleteDevices(userID, ids)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
