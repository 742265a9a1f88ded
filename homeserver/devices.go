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

// deviceErr turns the store's not-found into the API's 404.
func deviceErr(err error) error {
	if isNotFound(err) {
		return Errorf(404, ErrCodeNotFound, "unknown device")
	}
	return err
}

func handleDeviceGet(c *Call) {
	d, err := c.Node().store.Device(c.UserID, c.Req.Vars["deviceId"])
	if err != nil {
		c.Fail(deviceErr(err))
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
	if err != nil {
		c.Fail(deviceErr(err))
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
	if _, err := n.store.Device(c.UserID, id); err != nil {
		c.Fail(deviceErr(err))
		return
	}
	n.deleteDevicesWithPassword(c, req.Auth, []string{id})
}

// deleteDevicesWithPassword deletes the caller's devices ids once the
// m.login.password stage of user-interactive auth has passed.
func (n *Node) deleteDevicesWithPassword(c *Call, a *authDict, ids []string) {
	n.requirePassword(c, a, func() {
		if err := n.deleteDevices(c.UserID, ids); err != nil {
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
	c.Node().deleteDevicesWithPassword(c, req.Auth, req.Devices)
}
