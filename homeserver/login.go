package homeserver

import "fmt"

// loginRequest is the body of POST /login.
// Spec: client-server-api "POST /_matrix/client/v3/login".
type loginRequest struct {
	authDict
	DeviceID                 string  `json:"device_id"`
	InitialDeviceDisplayName *string `json:"initial_device_display_name"`
}

// handleLoginFlows: GET /login lists the supported login types.
func handleLoginFlows(c *Call) {
	c.Reply(200, map[string]any{"flows": []map[string]string{{"type": stagePassword}}})
}

func handleLogin(c *Call) {
	n := c.Node()
	var req loginRequest
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	if req.Type != stagePassword {
		c.Fail(Errorf(400, ErrCodeUnknown, "unsupported login type %q", req.Type))
		return
	}
	userID, err := n.resolveUser(&req.authDict)
	if err != nil {
		c.Fail(err)
		return
	}
	n.checkPassword(userID, req.Password, func(err error) {
		if c.Done() {
			return
		}
		if err != nil {
			c.Fail(err)
			return
		}
		token, deviceID, err := n.newSession(userID, req.DeviceID, req.InitialDeviceDisplayName, c.Req.RemoteIP)
		if err != nil {
			c.Fail(err)
			return
		}
		n.log.Info("login", "user_id", userID, "device_id", deviceID)
		c.Reply(200, map[string]any{"user_id": userID, "access_token": token, "device_id": deviceID,
			"home_server": n.cfg.ServerName})
	})
}

// handleLogout deletes the caller's device and so its access token.
// Spec: client-server-api "POST /_matrix/client/v3/logout".
func handleLogout(c *Call) {
	if err := c.Node().deleteDevices(c.UserID, []string{c.DeviceID}); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{})
}

// handleLogoutAll deletes every device of the caller.
// Spec: client-server-api "POST /_matrix/client/v3/logout/all".
func handleLogoutAll(c *Call) {
	if err := c.Node().deleteOtherDevices(c.UserID, ""); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{})
}

// handleWhoami: spec client-server-api "GET /_matrix/client/v3/account/whoami".
func handleWhoami(c *Call) {
	c.Reply(200, map[string]any{"user_id": c.UserID, "device_id": c.DeviceID, "is_guest": false})
}

// passwordRequest is the body of POST /account/password.
type passwordRequest struct {
	NewPassword   string    `json:"new_password"`
	LogoutDevices *bool     `json:"logout_devices"`
	Auth          *authDict `json:"auth"`
}

// handlePasswordChange: spec client-server-api
// "POST /_matrix/client/v3/account/password". Needs m.login.password UIA;
// unless logout_devices is false, every other device is logged out.
func handlePasswordChange(c *Call) {
	n := c.Node()
	var req passwordRequest
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	if req.Auth != nil && req.Auth.Type != "" {
		if err := checkPasswordShape(req.NewPassword); err != nil {
			c.Fail(err)
			return
		}
	}
	n.requirePassword(c, req.Auth, func() {
		n.hashForCall(c, req.NewPassword, func(hash string) {
			if err := n.store.SetPassword(c.UserID, hash); err != nil {
				c.Fail(err)
				return
			}
			if req.LogoutDevices == nil || *req.LogoutDevices {
				if err := n.deleteOtherDevices(c.UserID, c.DeviceID); err != nil {
					c.Fail(err)
					return
				}
			}
			n.log.Info("password changed", "user_id", c.UserID)
			c.Reply(200, map[string]any{})
		})
	})
}

// handleThreePIDs: GET /account/3pid. This server binds no e-mail
// addresses or phone numbers, so the list is always empty; clients'
// settings screens ask for it.
func handleThreePIDs(c *Call) {
	c.Reply(200, map[string]any{"threepids": []any{}})
}

// handleDeactivate: spec client-server-api
// "POST /_matrix/client/v3/account/deactivate". Needs m.login.password
// UIA. The account row stays (its user ID is never handed out again) and
// refuses logins, every device is deleted, and the
// OnAccountDeactivated hooks run. erase is accepted and ignored.
func handleDeactivate(c *Call) {
	n := c.Node()
	var req struct {
		Auth *authDict `json:"auth"`
	}
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	n.requirePassword(c, req.Auth, func() {
		if err := n.store.Deactivate(c.UserID); err != nil {
			c.Fail(err)
			return
		}
		if err := n.deleteOtherDevices(c.UserID, ""); err != nil {
			c.Fail(err)
			return
		}
		for _, f := range n.deactivateHooks {
			if err := f(c.UserID); err != nil {
				c.Fail(fmt.Errorf("deactivate %s: %w", c.UserID, err))
				return
			}
		}
		n.log.Info("account deactivated", "user_id", c.UserID)
		c.Reply(200, map[string]any{"id_server_unbind_result": "no-support"})
	})
}
