package homeserver

// GET /_matrix/federation/v1/version (server-server-api "Server
// implementation") and the .well-known discovery documents
// (server-server-api "Server discovery", client-server-api "Well-known
// URIs"), served only when configured.

import "runtime/debug"

// softwareName is the server implementation name we report.
const softwareName = "mxmesh"

func (f *Federation) infoRoutes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/_matrix/federation/v1/version", Auth: AuthNone, Handle: handleFederationVersion},
		{Method: "GET", Pattern: "/.well-known/matrix/server", Auth: AuthNone, Handle: f.handleWellKnownServer},
		{Method: "GET", Pattern: "/.well-known/matrix/client", Auth: AuthNone, Handle: f.handleWellKnownClient},
	}
}

// softwareVersion is the module version from the build info, "devel" when
// there is none (tests, go run).
func softwareVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func handleFederationVersion(c *Call) {
	c.Reply(200, map[string]any{"server": map[string]string{"name": softwareName, "version": softwareVersion()}})
}

func (f *Federation) handleWellKnownServer(c *Call) {
	if f.n.cfg.WellKnownServer == "" {
		c.Fail(Errorf(404, ErrCodeNotFound, "no server delegation is configured"))
		return
	}
	c.Reply(200, map[string]string{"m.server": f.n.cfg.WellKnownServer})
}

func (f *Federation) handleWellKnownClient(c *Call) {
	if f.n.cfg.WellKnownClient == "" {
		c.Fail(Errorf(404, ErrCodeNotFound, "no client discovery information is configured"))
		return
	}
	c.Reply(200, map[string]any{"m.homeserver": map[string]string{"base_url": f.n.cfg.WellKnownClient}})
}
