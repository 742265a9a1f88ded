package codec

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Mesh-table golden vectors, checked by hand against keys.go and values.go.
func TestGoldenMesh(t *testing.T) {
	zeros := strings.Repeat("A", 43)                     // 32 zero bytes, unpadded base64
	id := "$AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA" // bytes 1…32, URL-safe
	idHex := "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	cases := []struct {
		name, json, hex string
		table           Table
	}{
		{"send body", `{"body":"hello","msgtype":"m.text"}`, "a22865" + hex.EncodeToString([]byte("hello")) + "2901", TableMesh1},
		{"send body msc3079", `{"body":"hello","msgtype":"m.text"}`, "a2181b65" + hex.EncodeToString([]byte("hello")) + "181c66" + hex.EncodeToString([]byte("m.text")), TableMSC3079},
		{"plain", `{"a":[-1,true,null,false]}`, "a161618420f5f6f4", TablePlain},
		{"integer under enum key", `{"type":5}`, "a102d9b0cb05", TableMesh1},
		{"negative under enum key", `{"type":-5}`, "a102d9b0cb24", TableMesh1},
		{"unknown enum value stays text", `{"type":"x.y"}`, "a10263782e79", TableMesh1},
		{"content hash", `{"hashes":{"sha256":"` + zeros + `"}}`, "a120a1005820" + strings.Repeat("00", 32), TableMesh1},
		{"padded base64 stays text", `{"hashes":{"sha256":"abc="}}`, "a120a10064" + hex.EncodeToString([]byte("abc=")), TableMesh1},
		{"event ID", `{"prev_events":["` + id + `"]}`, "a123815820" + idHex, TableMesh1},
		{"timestamp", `{"origin_server_ts":1764115200000}`, "a1081b0000019abd75b800", TableMesh1},
		{"room v12 room ID", `{"room_id":"!` + id[1:] + `"}`, "a1055820" + idHex, TableMesh1},
		{"room v10 room ID stays text", `{"room_id":"!a:b"}`, "a10564" + hex.EncodeToString([]byte("!a:b")), TableMesh1},
		{"numeric string key stays a string", `{"8":1}`, "a1613801", TableMesh1},
	}
	for _, c := range cases {
		got, _, err := Encode(nil, []byte(c.json), c.table)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if h := hex.EncodeToString(got); h != c.hex {
			t.Errorf("%s: Encode = %s, want %s", c.name, h, c.hex)
		}
		back, err := Decode(nil, got, c.table)
		if err != nil || string(back) != c.json {
			t.Errorf("%s: Decode = %s, %v", c.name, back, err)
		}
	}
}

// MSC3079 "JSON -> CBOR": when a key appears both as an integer and as its
// string, the string key is used.
func TestStringKeyWins(t *testing.T) {
	// {8: 1, "origin_server_ts": 2}
	c, _ := hex.DecodeString("a20801706f726967696e5f7365727665725f747302")
	for _, tab := range []Table{TableMSC3079, TableMesh1} {
		j, err := Decode(nil, c, tab)
		if err != nil || string(j) != `{"origin_server_ts":2}` {
			t.Errorf("%s: Decode = %s, %v", tab, j, err)
		}
	}
}
