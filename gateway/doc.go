// Package gateway is the node's front doors and outbound transport.
//
// It translates between the outside world and the homeserver's one API
// surface (homeserver.Request / homeserver.Response):
//
//   - the HTTP(S) front door: Matrix clients and ordinary homeservers speak
//     HTTPS+JSON; each request becomes one homeserver.Request;
//   - the CoAP front door: low-bandwidth clients and mesh peers speak CoAP
//     (package coap) over UDP, secured by Noise (package noise), with CBOR
//     payloads (package codec); a plain-UDP mode without Noise is allowed on
//     loopback addresses only, for debugging with standard CoAP tools.
//
// The protocol engines in coap and noise are sans-I/O state machines; this
// package owns the sockets and the goroutines that feed them, and posts the
// resulting requests into the node loop. Endpoints are never defined here:
// they live once in package homeserver.
package gateway
