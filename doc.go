// Package mxmesh is the root of the mxmesh module: a Matrix homeserver and
// gateway for links where bandwidth is scarce. The code lives in the
// subpackages laid out in DESIGN.md; this package holds only the
// repository-wide tests, such as the layering test that keeps the protocol
// cores free of I/O.
package mxmesh
