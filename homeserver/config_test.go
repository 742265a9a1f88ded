package homeserver

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigRoundTrip(t *testing.T) {
	c := DefaultConfig("mesh.example:8448")
	c.Registration.Open = true
	c.Registration.SharedSecret = `we"ird: secret`
	c.FederationTLSInsecure = true
	data, err := c.MarshalCommented()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "# Matrix server name") {
		t.Fatal("no comments in the written config")
	}
	got, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("parse written config: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, *c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"server_name: ''\n", "server_name is empty"},
		{"server_name: a.b\nclient_adr: x\n", "client_adr"},
		{"server_name: a.b\nclient_addr: nocolon\n", "client_addr"},
		{"server_name: a.b\nclient_addr: 'h:99999'\n", "bad port"},
		{"server_name: 'a b'\n", "bad character"},
		{"server_name: 'a.b:0'\n", "bad port"},
		{"server_name: a.b\nbcrypt_cost: 2\n", "bcrypt_cost"},
		{"server_name: a.b\nlog_level: loud\n", "log_level"},
		{"server_name: a.b\nrate_limit: {enabled: true, per_ip: {per_second: 0, burst: 1}}\n", "per_ip"},
		{"server_name: [\n", "parse YAML"},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestServerNames(t *testing.T) {
	for _, ok := range []string{"localhost", "a.b.c", "1.2.3.4:8448", "[::1]", "[::1]:80", "x-y.z:1"} {
		if err := ValidateServerName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ":80", "a_b", "a.b:", "a.b:-1", "[::1", "[zz]", "a/b"} {
		if err := ValidateServerName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
