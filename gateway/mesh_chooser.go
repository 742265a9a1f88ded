package gateway

import (
	"errors"
	"fmt"

	"github.com/mxmesh/mxmesh/homeserver"
)

// ErrNoRoute: a federation request to a server that is not a mesh peer,
// from a node without another transport.
var ErrNoRoute = errors.New("gateway: no transport reaches this server")

// RemoteChooser is the node's outbound transport chosen per destination
// (DESIGN.md "The picture", gateway "outbound"): pinned mesh peers over the
// mesh (MeshRemote), every other server over Other (FederationRemote:
// HTTPS, discovery, X-Matrix). Safe for concurrent use if both are.
type RemoteChooser struct {
	mesh  *MeshRemote
	other homeserver.Remote
}

// NewRemoteChooser returns the chooser; other may be nil (mesh only).
func NewRemoteChooser(mesh *MeshRemote, other homeserver.Remote) (*RemoteChooser, error) {
	if mesh == nil {
		return nil, errors.New("gateway: remote chooser: no mesh remote")
	}
	return &RemoteChooser{mesh: mesh, other: other}, nil
}

// Do implements homeserver.Remote.
func (c *RemoteChooser) Do(dest string, req homeserver.OutboundRequest, done func(homeserver.OutboundResponse, error)) {
	switch {
	case c.mesh.Reaches(dest):
		c.mesh.Do(dest, req, done)
	case c.other != nil:
		c.other.Do(dest, req, done)
	default:
		err := fmt.Errorf("federation %s %s%s: %w", req.Method, dest, req.URI, ErrNoRoute)
		if perr := c.mesh.post(func() { done(homeserver.OutboundResponse{}, err) }); perr != nil {
			c.mesh.log.Debug("federation answer dropped: loop closed", "dest", dest)
		}
	}
}
