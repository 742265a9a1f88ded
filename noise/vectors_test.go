package noise

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"

	fnoise "github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestNoiseVectors replays the published Noise vectors for
// Noise_{IK,KK,XX}_25519_ChaChaPoly_BLAKE2s (testdata/vectors.txt, copied
// from github.com/flynn/noise v1.1.0) through the same cipher suite value
// the endpoint uses, and checks the transport messages with our own
// explicit-nonce AEAD (the keys from Split, nonce = 4 zero bytes | 64-bit
// little-endian counter, Noise spec §12.3) rather than flynn's CipherState.
func TestNoiseVectors(t *testing.T) {
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type vec struct {
		name string
		kv   map[string][]byte
		msgs []string
	}
	var vs []*vec
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if k == "handshake" {
			vs = append(vs, &vec{name: v, kv: map[string][]byte{}})
			continue
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		cur := vs[len(vs)-1]
		cur.kv[k] = b
		if strings.HasSuffix(k, "_ciphertext") {
			cur.msgs = append(cur.msgs, strings.TrimSuffix(k, "_ciphertext"))
		}
	}
	if len(vs) != 3 {
		t.Fatalf("got %d vectors, want 3", len(vs))
	}
	patterns := map[string]fnoise.HandshakePattern{"IK": fnoise.HandshakeIK, "KK": fnoise.HandshakeKK, "XX": fnoise.HandshakeXX}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			pname := strings.Split(v.name, "_")[1]
			pat := patterns[pname]
			if "Noise_"+pname+"_"+string(suite.Name()) != v.name {
				t.Fatalf("suite name %q does not match %q", suite.Name(), v.name)
			}
			si, _ := suite.GenerateKeypair(bytes.NewReader(v.kv["init_static"]))
			sr, _ := suite.GenerateKeypair(bytes.NewReader(v.kv["resp_static"]))
			ci := fnoise.Config{CipherSuite: suite, Pattern: pat, Initiator: true, StaticKeypair: si,
				Random: bytes.NewReader(v.kv["gen_init_ephemeral"])}
			cr := fnoise.Config{CipherSuite: suite, Pattern: pat, StaticKeypair: sr,
				Random: bytes.NewReader(v.kv["gen_resp_ephemeral"])}
			if pname != "XX" {
				ci.PeerStatic = sr.Public
			}
			if pname == "KK" {
				cr.PeerStatic = si.Public
			}
			hi, _ := fnoise.NewHandshakeState(ci)
			hr, _ := fnoise.NewHandshakeState(cr)
			var i2r, r2i [32]byte
			for i, m := range v.msgs {
				payload, want := v.kv[m+"_payload"], v.kv[m+"_ciphertext"]
				if i < len(pat.Messages) {
					w, r := hi, hr
					if i%2 == 1 {
						w, r = hr, hi
					}
					msg, c1, c2, err := w.WriteMessage(nil, payload)
					if err != nil || !bytes.Equal(msg, want) {
						t.Fatalf("%s: wrote %x (err %v), want %x", m, msg, err, want)
					}
					got, _, _, err := r.ReadMessage(nil, msg)
					if err != nil || !bytes.Equal(got, payload) {
						t.Fatalf("%s: read %x (err %v)", m, got, err)
					}
					if c1 != nil {
						i2r, r2i = c1.UnsafeKey(), c2.UnsafeKey()
					}
					continue
				}
				// Transport: messages alternate i→r, r→i, each direction
				// counting from nonce 0.
				k := i2r
				if (i-len(pat.Messages))%2 == 1 {
					k = r2i
				}
				n := uint64((i - len(pat.Messages)) / 2)
				aead, _ := chacha20poly1305.New(k[:])
				var nonce [12]byte
				binary.LittleEndian.PutUint64(nonce[4:], n)
				got := aead.Seal(nil, nonce[:], payload, nil)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: transport %x, want %x", m, got, want)
				}
			}
			if len(v.msgs) < len(pat.Messages)+2 {
				t.Fatalf("vector has %d messages: %s", len(v.msgs), strconv.Itoa(len(v.msgs)))
			}
		})
	}
}
