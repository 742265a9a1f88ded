package homeserver

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestConfigFederationAddresses(t *testing.T) {
	if c := DefaultConfig("a.b"); c.Federation.AllowPrivateAddresses || len(c.Federation.AllowedRanges) != 0 {
		t.Fatalf("default allows private addresses: %+v", c.Federation)
	}
	c := DefaultConfig("a.b")
	c.Federation = FederationConfig{AllowedRanges: []string{"10.20.0.0/16", "fd00:1::/48"}}
	data, err := c.MarshalCommented()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("parse written config: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got.Federation, c.Federation) {
		t.Fatalf("round trip: %+v, want %+v", got.Federation, c.Federation)
	}
	// A host address with a prefix length stands for its network.
	got, err = ParseConfig([]byte("server_name: a.b\nfederation: {allow_private_addresses: true, allowed_ranges: ['10.1.2.3/16']}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := got.Federation.Prefixes(); err != nil || !got.Federation.AllowPrivateAddresses ||
		!reflect.DeepEqual(p, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}) {
		t.Fatalf("parsed %+v: %v %v", got.Federation, p, err)
	}
	for _, bad := range []string{"10.0.0.0", "10.0.0.0/33", "example.org/8", ""} {
		_, err := ParseConfig([]byte("server_name: a.b\nfederation: {allowed_ranges: ['" + bad + "']}\n"))
		if err == nil || !strings.Contains(err.Error(), "federation.allowed_ranges") {
			t.Errorf("allowed range %q: %v, want a federation.allowed_ranges error", bad, err)
		}
	}
}
