package homeserver

import "github.com/mxmesh/mxmesh/homeserver/store"

// deviceJSON is a device as the device-management API shows it.
// Spec: client-server-api "Device management", Device object.
func deviceJSON(d store.Device) map[string]any {
	m := map[string]any{"device_id": d.DeviceID, "last_seen_ts": d.LastSeenTS}
	if d.DisplayName != nil {
		m["display_name"] = *d.DisplayName
	}
	if d.LastSeenIP != "" {
		m["last_seen_ip"] = d.LastSeenIP
	}
	return m
}

func handleDevices(c *Call) {
	devs, err := c.Node().store.Devices(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	out := make([]map[string]any, len(devs))
	for i, d := range devs {
		out[i] = deviceJSON(d)
	}
	c.Reply(200, map[string]any{"devices": out})
}

func handleDeviceGet(c *Call) {
	d, err := c.Node().store.Device(c.UserID, c.Req.Vars["deviceId"])
	if isNotFound(err) {
		c.Fail(Errorf(404, ErrCodeNotFound, "unknown device"))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, deviceJSON(d))
}

func handleDevicePut(c *Call) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	n := c.Node()
	id := c.Req.Vars["deviceId"]
	var err error
	if req.DisplayName != nil {
		err = n.store.SetDeviceName(c.UserID, id, *req.DisplayName)
	} else {
		_, err = n.store.Device(c.UserID, id)
	}
	if isNotFound(err) {
		c.Fail(Errorf(404, ErrCodeNotFound, "unknown device"))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{})
}

// handleDeviceDelete: DELETE /devices/{deviceId}, with m.login.password UIA.
func handleDeviceDelete(c *Call) {
	var req struct {
		Auth *authDict `json:"auth"`
	}
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	n := c.Node()
	id := c.Req.Vars["deviceId"]
	if _, err := n.store.Device(c.UserID, id); isNotFound(err) {
		c.Fail(Errorf(404, ErrCodeNotFound, "unknown device"))
		return
	} else if err != nil {
		c.Fail(err)
		return
	}
	n.requirePassword(c, req.Auth, func() {
		if err := n.deleteDevices(c.UserID, []string{id}); err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{})
	})
}

// handleDeleteDevices: POST /delete_devices, with m.login.password UIA.
// Unknown device IDs are ignored, as the spec allows.
func handleDeleteDevices(c *Call) {
	var req struct {
		Devices []string  `json:"devices"`
		Auth    *authDict `json:"auth"`
	}
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	if req.Devices == nil {
		c.Fail(Errorf(400, ErrCodeMissingParam, "missing devices"))
		return
	}
	n := c.Node()
	n.requirePassword(c, req.Auth, func() {
		if err := n.deleteDevices(c.UserID, req.Devices); err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{})
	})
}
