package homeserver

import (
	"strconv"
	"strings"
)

// streamToken is a sync and pagination token. Spec: client-server-api
// "Syncing" (next_batch / since) and "Pagination": tokens are opaque to
// clients.
//
// Layout: "s" POS ["_" TYPING], decimal. POS is a position in the node's
// stream (events, receipts, account data share one counter, persisted with
// the rows, so tokens survive restarts): the token stands between the item
// at POS and the next one. TYPING is the typing serial (in memory; each
// run's serials start above the previous run's, at the boot time in ms).
// Pagination tokens (/messages, prev_batch) carry only POS, which is
// negative inside history backfilled from other servers.
type streamToken struct {
	pos    int64
	typing int64
}

func (t streamToken) String() string {
	if t.typing == 0 {
		return "s" + strconv.FormatInt(t.pos, 10)
	}
	return "s" + strconv.FormatInt(t.pos, 10) + "_" + strconv.FormatInt(t.typing, 10)
}

// parseStreamToken reads a token written by String.
func parseStreamToken(s string) (streamToken, error) {
	bad := Errorf(400, ErrCodeInvalidParam, "invalid token %q", s)
	rest, ok := strings.CutPrefix(s, "s")
	if !ok {
		return streamToken{}, bad
	}
	posStr, typStr, hasTyp := strings.Cut(rest, "_")
	pos, err := strconv.ParseInt(posStr, 10, 64)
	if err != nil || pos < 0 {
		return streamToken{}, bad
	}
	t := streamToken{pos: pos}
	if hasTyp {
		if t.typing, err = strconv.ParseInt(typStr, 10, 64); err != nil || t.typing < 0 {
			return streamToken{}, bad
		}
	}
	return t, nil
}

// parsePageToken is parseStreamToken for /messages' from and to, which may
// also point into backfilled history (a negative position, "s-17").
func parsePageToken(s string) (streamToken, error) {
	if rest, ok := strings.CutPrefix(s, "s-"); ok && !strings.Contains(rest, "_") {
		pos, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || pos <= 0 {
			return streamToken{}, Errorf(400, ErrCodeInvalidParam, "invalid token %q", s)
		}
		return streamToken{pos: -pos}, nil
	}
	return parseStreamToken(s)
}
