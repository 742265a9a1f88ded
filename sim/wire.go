package sim

import (
	"encoding/json"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/homeserver"
)

// apiMessage builds a client's CoAP request for an API call: the same
// encoding the mesh transport uses for federation (gateway.MeshRequest:
// MSC3079 path codes, Uri-Query options, the body as a codec frame, Accept
// 65060), plus the access token in option 256 (MSC3079 "Access Tokens")
// when token is not empty.
func apiMessage(method, uri string, body []byte, token string) (*coap.Message, error) {
	m, err := gateway.MeshRequest(homeserver.OutboundRequest{Method: method, URI: uri, Body: body})
	if err != nil {
		return nil, fmt.Errorf("sim: api request %s %s: %w", method, uri, err)
	}
	if token != "" {
		m.Options = m.Options.Add(message.Option{ID: gateway.OptionAuthorization, Value: []byte(token)})
	}
	return m, nil
}

// answer is a decoded API answer.
type answer struct {
	Status  int
	JSON    []byte
	Errcode string
}

// decodeAnswer turns a CoAP answer back into an HTTP status, JSON and the
// Matrix errcode of an error.
func decodeAnswer(m coap.Message) (answer, error) {
	r, err := gateway.MeshResponse(m)
	if err != nil {
		return answer{}, fmt.Errorf("sim: decode answer: %w", err)
	}
	a := answer{Status: r.Status, JSON: r.Body}
	if a.Status >= 400 {
		var e struct {
			Errcode string `json:"errcode"`
		}
		_ = json.Unmarshal(a.JSON, &e)
		a.Errcode = e.Errcode
	}
	return a, nil
}
