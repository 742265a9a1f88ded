package codec

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"testing"
)

// Tables only grow: these pins cover every entry given out in version 1.
// Appending keeps them passing; renumbering or editing an entry fails.
func TestTablesOnlyGrow(t *testing.T) {
	pin := func(name string, entries []string, n int, want string) {
		t.Helper()
		if len(entries) < n {
			t.Fatalf("%s: %d entries, version 1 gave out %d", name, len(entries), n)
		}
		sum := sha256.Sum256([]byte(strings.Join(entries[:n], "\n")))
		if got := hex.EncodeToString(sum[:8]); got != want {
			t.Errorf("%s: first %d entries hash %s, pinned %s", name, n, got, want)
		}
	}
	var paths []string
	for _, pe := range pathEnums {
		paths = append(paths, pe[0]+" "+pe[1])
	}
	pin("msc3079Keys", msc3079Keys[:], 104, pinMSC3079)
	pin("meshKeys", meshKeys[:], pinMeshN, pinMesh)
	pin("enumValues", enumValues[:], pinEnumN, pinEnum)
	pin("pathEnums", paths, pinPathN, pinPath)
	var sigils []string
	for k, s := range sigilKeys {
		sigils = append(sigils, k+" "+string(s))
	}
	sort.Strings(sigils)
	sum := sha256.Sum256([]byte(strings.Join(sigils, "\n")))
	if got := hex.EncodeToString(sum[:8]); got != pinSigils {
		t.Errorf("sigilKeys changed (hash %s, pinned %s): that changes how mesh1 decodes", got, pinSigils)
	}
}

const (
	pinMSC3079 = "6c25af16e1c3d007"
	pinMeshN   = 108
	pinMesh    = "63e019fc8a036d4d"
	pinEnumN   = 77
	pinEnum    = "b9a87afee838df47"
	pinPathN   = 88
	pinPath    = "9003137ec805e3d7"
	pinSigils  = "b87df0475aec284d"
)

func TestKeyTables(t *testing.T) {
	// Spot checks against MSC3079 Appendix A.
	for name, n := range map[string]int64{"event_id": 1, "rooms": 23, "join": 24, "hashes": 36, "room_alias": 104, "m.fully_read": 92} {
		if got := msc3079Table.byName[name]; got != n {
			t.Errorf("msc3079 %q = %d, want %d", name, got, n)
		}
		if meshTable.byNum[n] != name {
			t.Errorf("mesh table does not decode MSC3079 key %d as %q", n, name)
		}
	}
	// One-byte aliases win in the mesh table.
	for _, name := range []string{"hashes", "signatures", "body", "msgtype", "join", "membership"} {
		if n := meshTable.byName[name]; headLen(n) != 1 || n > 0 {
			t.Errorf("mesh %q = %d, want a one-byte mesh number", name, n)
		}
	}
	seen := map[string]bool{}
	for _, k := range meshKeys {
		if seen[k] {
			t.Errorf("mesh key %q listed twice", k)
		}
		seen[k] = true
	}
	if len(meshKeys) > 257 {
		t.Errorf("%d mesh keys: past −256 keys need three-byte heads; reorder nothing, but check sizes", len(meshKeys))
	}
}
