package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/noa-server/webhook/internal/redact"
)

// Header names of the two signature schemes every delivery carries.
const (
	// HeaderSignature is the guide's header: "sha256=" + hex HMAC-SHA256 of
	// the raw body, keyed with the whole secret string.
	HeaderSignature = "X-Webhook-Signature"
	// HeaderStandardID is the Standard Webhooks message id header. It is
	// the same on every attempt of a delivery.
	HeaderStandardID = "Webhook-Id"
	// HeaderStandardTimestamp is the Standard Webhooks header holding the
	// Unix seconds at which the attempt was signed.
	HeaderStandardTimestamp = "Webhook-Timestamp"
	// HeaderStandardSignature is the Standard Webhooks signature header:
	// space-separated "v1,<base64>" signatures of
	// id + "." + timestamp + "." + body, one for each signing secret.
	HeaderStandardSignature = "Webhook-Signature"
)

// SecretPrefix starts every secret the library generates.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a signed timestamp may be from the verifier's
// clock, in either direction.
const DefaultTolerance = 5 * time.Minute

// Verification errors. Callers match them with errors.Is.
var (
	// ErrMissingSignature reports a request that carries no signature
	// header at all.
	ErrMissingSignature = errors.New("webhook: missing signature")
	// ErrMalformedHeader reports a signature header that is present but
	// cannot be parsed (a timestamp with signs or spaces, an id without a
	// timestamp, …).
	ErrMalformedHeader = errors.New("webhook: malformed signature header")
	// ErrInvalidSignature reports that no signature matches any configured
	// secret.
	ErrInvalidSignature = errors.New("webhook: invalid signature")
	// ErrTimestampTooOld reports a signed timestamp further in the past
	// than the tolerance allows (a replay, or a clock far behind).
	ErrTimestampTooOld = errors.New("webhook: timestamp too old")
	// ErrTimestampTooNew reports a signed timestamp further in the future
	// than the tolerance allows (a clock far ahead).
	ErrTimestampTooNew = errors.New("webhook: timestamp too new")
	// ErrLegacyOnly reports a request signed only with the guide's
	// X-Webhook-Signature, refused because the verifier requires the
	// Standard Webhooks headers, which bind a timestamp (downgrade
	// protection).
	ErrLegacyOnly = errors.New("webhook: legacy-only signature refused")
	// ErrNoSecrets reports a Signer or Verifier built without a secret.
	ErrNoSecrets = errors.New("webhook: no secrets")
)

// signingKey holds a secret in both key forms, with pools of HMACs keyed
// with each (an HMAC's Reset returns it to its keyed state, so a pooled one
// skips the key schedule and the allocations of hmac.New).
type signingKey struct {
	legacy []byte // UTF-8 bytes of the whole secret string
	v1     []byte // base64-decoded secret after "whsec_", else the raw bytes

	legacyMACs, v1MACs *sync.Pool // of hash.Hash
}

func newSigningKey(secret string) signingKey {
	k := signingKey{legacy: []byte(secret), v1: standardKey(secret)}
	k.legacyMACs = &sync.Pool{New: func() any { return hmac.New(sha256.New, k.legacy) }}
	k.v1MACs = &sync.Pool{New: func() any { return hmac.New(sha256.New, k.v1) }}
	return k
}

// appendMAC appends the HMAC-SHA256 of parts, keyed from pool, to dst.
func appendMAC(dst []byte, pool *sync.Pool, parts ...[]byte) []byte {
	mac := pool.Get().(hash.Hash)
	for _, p := range parts {
		mac.Write(p)
	}
	dst = mac.Sum(dst)
	mac.Reset()
	pool.Put(mac)
	return dst
}

// standardKey returns the Standard Webhooks key of a secret: the base64
// decoding of what follows "whsec_", or the secret's raw bytes when that is
// not valid base64.
func standardKey(secret string) []byte {
	s := strings.TrimPrefix(secret, SecretPrefix)
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) > 0 {
		return k
	}
	return []byte(secret)
}

// SignLegacy returns the guide's X-Webhook-Signature value for body:
// "sha256=" + lowercase hex HMAC-SHA256 keyed with the whole secret string.
func SignLegacy(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SignStandard returns one Standard Webhooks signature entry, "v1," + base64
// HMAC-SHA256 of msgID + "." + timestamp + "." + body, keyed with the base64
// decoding of what follows "whsec_" (the secret's raw bytes when that is not
// valid base64).
func SignStandard(secret, msgID string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(standardMAC(standardKey(secret), msgID, timestamp, body))
}

func standardMAC(key []byte, msgID string, timestamp int64, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	var buf [24]byte
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(buf[:0], timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Signer signs request bodies with a webhook's active secrets. Make one with
// [NewSigner]; a Signer without a secret (the zero value, or nil) signs
// nothing. It is safe for concurrent use.
type Signer struct {
	secrets []string
	keys    []signingKey
}

// NewSigner returns a Signer for secrets, the current one first. The guide's
// header uses only the current secret; the Standard header carries one entry
// per secret, so receivers still on a previous secret verify during a
// rotation. It fails with ErrNoSecrets when there is none or one is empty.
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	s := &Signer{secrets: secrets, keys: make([]signingKey, len(secrets))}
	for i, sec := range secrets {
		if sec == "" {
			return nil, ErrNoSecrets
		}
		s.keys[i] = newSigningKey(sec)
	}
	return s, nil
}

// canonicalHeaderSignature is HeaderSignature as http.Header.Set keys it.
var canonicalHeaderSignature = http.CanonicalHeaderKey(HeaderSignature)

// Sign sets the signature headers on h: X-Webhook-Signature, webhook-id,
// webhook-timestamp and webhook-signature, for body sent at ts. A Signer
// without a secret (not made by NewSigner) removes those headers instead,
// so the request goes unsigned and receivers refuse it.
func (s *Signer) Sign(h http.Header, msgID string, ts time.Time, body []byte) {
	if s == nil || len(s.keys) == 0 {
		for _, k := range []string{canonicalHeaderSignature, HeaderStandardID, HeaderStandardTimestamp, HeaderStandardSignature} {
			delete(h, k)
		}
		return
	}
	// Every value is built in one buffer and converted to one string; the
	// header values are slices of it, and the three value slices share one
	// backing array. The same allocation holds, after the values, the
	// scratch space for the MACs and the Standard prefix id.ts. .
	const legacyLen = len("sha256=") + 2*sha256.Size
	const entryLen = len("v1,") + (sha256.Size+2)/3*4
	valuesCap := legacyLen + 20 + len(s.keys)*(entryLen+1)
	full := make([]byte, valuesCap+sha256.Size+len(msgID)+22)
	buf := full[:0:valuesCap]
	macBuf := full[valuesCap : valuesCap : valuesCap+sha256.Size]
	pre := full[valuesCap+sha256.Size : valuesCap+sha256.Size]

	buf = append(buf, "sha256="...)
	buf = hex.AppendEncode(buf, appendMAC(macBuf, s.keys[0].legacyMACs, body))
	buf = strconv.AppendInt(buf, ts.Unix(), 10)
	tsEnd := len(buf)
	pre = append(append(append(append(pre, msgID...), '.'), buf[legacyLen:tsEnd]...), '.')
	for i, k := range s.keys {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, "v1,"...)
		buf = base64.StdEncoding.AppendEncode(buf, appendMAC(macBuf, k.v1MACs, pre, body))
	}
	str := string(buf)
	vals := make([]string, 4)
	vals[0], vals[1], vals[2], vals[3] = str[:legacyLen], msgID, str[legacyLen:tsEnd], str[tsEnd:]
	h[canonicalHeaderSignature] = vals[0:1:1]
	h[HeaderStandardID] = vals[1:2:2]
	h[HeaderStandardTimestamp] = vals[2:3:3]
	h[HeaderStandardSignature] = vals[3:4:4]
}

// VerifyOptions tunes a Verifier. The zero value is the safe default.
type VerifyOptions struct {
	// Tolerance is how far the signed timestamp may be from Now, both ways.
	// Defaults to DefaultTolerance (5 minutes).
	Tolerance time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// AllowLegacy accepts requests that carry only the guide's
	// X-Webhook-Signature (no timestamp, so replayable). Leave it off for
	// senders that send both schemes, as this library does.
	AllowLegacy bool
}

// Verifier checks signed requests against one or more secrets (several
// during a rotation). It is safe for concurrent use. Make one with
// [NewVerifier]; a Verifier without a secret (the zero value, or nil)
// refuses every request with ErrNoSecrets.
type Verifier struct {
	keys        []signingKey
	tolerance   time.Duration
	now         func() time.Time
	allowLegacy bool
}

// NewVerifier returns a Verifier for secrets. It fails with ErrNoSecrets when
// there is none or one is empty.
func NewVerifier(secrets []string, opts VerifyOptions) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	v := &Verifier{
		keys:        make([]signingKey, len(secrets)),
		tolerance:   opts.Tolerance,
		now:         opts.Now,
		allowLegacy: opts.AllowLegacy,
	}
	for i, sec := range secrets {
		if sec == "" {
			return nil, ErrNoSecrets
		}
		v.keys[i] = newSigningKey(sec)
	}
	if v.tolerance <= 0 {
		v.tolerance = DefaultTolerance
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Verify checks the signature headers of a request against its raw body.
// When the Standard Webhooks headers are present they are verified, with
// the timestamp tolerance (a webhook-id or webhook-timestamp line without
// a webhook-signature, even an empty line, is ErrMalformedHeader);
// otherwise the guide's X-Webhook-Signature is verified only if
// AllowLegacy is set. Entries of webhook-signature other than
// "v1,<base64>" are skipped; every other entry is tried against every
// secret, in constant time per comparison. A Verifier without a secret
// (not made by NewVerifier) fails with ErrNoSecrets.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	if v == nil || len(v.keys) == 0 {
		return ErrNoSecrets
	}
	sigs := h.Values(HeaderStandardSignature)
	if len(sigs) == 0 {
		// A webhook-id or webhook-timestamp without its signature is a
		// Standard Webhooks request whose signature was stripped, perhaps
		// to replay it on the timeless legacy header: refused, legacy
		// allowed or not. Any line counts, an empty one too (Header.Get
		// would read an empty first line as no header).
		if len(h.Values(HeaderStandardID)) > 0 || len(h.Values(HeaderStandardTimestamp)) > 0 {
			return ErrMalformedHeader
		}
		legacy := h.Values(HeaderSignature)
		if len(legacy) == 0 {
			return ErrMissingSignature
		}
		if !v.allowLegacy {
			return ErrLegacyOnly
		}
		return v.verifyLegacy(body, legacy)
	}
	return v.verifyStandard(body, h.Get(HeaderStandardID), h.Get(HeaderStandardTimestamp), sigs)
}

func (v *Verifier) verifyLegacy(body []byte, values []string) error {
	var want [][]byte
	for _, val := range values {
		hexSig, ok := strings.CutPrefix(val, "sha256=")
		if !ok {
			return ErrMalformedHeader
		}
		got, err := hex.DecodeString(hexSig)
		if err != nil || len(got) != sha256.Size {
			return ErrMalformedHeader
		}
		want = append(want, got)
	}
	for _, k := range v.keys {
		mac := hmac.New(sha256.New, k.legacy)
		mac.Write(body)
		sum := mac.Sum(nil)
		for _, got := range want {
			if hmac.Equal(sum, got) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}

func (v *Verifier) verifyStandard(body []byte, msgID, tsHeader string, sigValues []string) error {
	if msgID == "" || tsHeader == "" {
		return ErrMalformedHeader
	}
	ts, err := ParseTimestamp(tsHeader)
	if err != nil {
		return err
	}
	now := v.now()
	signed := time.Unix(ts, 0)
	if now.Sub(signed) > v.tolerance {
		return ErrTimestampTooOld
	}
	if signed.Sub(now) > v.tolerance {
		return ErrTimestampTooNew
	}

	var candidates [][]byte
	for _, val := range sigValues {
		for _, entry := range strings.Fields(val) {
			version, sig, ok := strings.Cut(entry, ",")
			if !ok || version != "v1" {
				continue // unknown versions (v1a, v2) and garbled entries are skipped
			}
			raw, err := base64.StdEncoding.DecodeString(sig)
			if err != nil || len(raw) != sha256.Size {
				continue // a garbled entry cannot match; others still may
			}
			candidates = append(candidates, raw)
		}
	}
	if len(candidates) == 0 {
		return ErrInvalidSignature
	}
	for _, k := range v.keys {
		sum := standardMAC(k.v1, msgID, ts, body)
		for _, c := range candidates {
			if hmac.Equal(sum, c) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}

// ParseTimestamp parses a webhook-timestamp header: decimal Unix seconds,
// digits only (no sign, no spaces, no fraction), at most 12 digits, so a
// 13-digit millisecond timestamp is refused as malformed (and a 12-digit one
// lands far in the future, where the tolerance check refuses it).
func ParseTimestamp(s string) (int64, error) {
	if s == "" || len(s) > 12 {
		return 0, ErrMalformedHeader
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrMalformedHeader
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrMalformedHeader
	}
	return n, nil
}

// Format prints s as "webhook.Signer{secrets: [redacted] ×n}", whatever the
// verb: a Signer holds its secrets, which fmt would otherwise print, as
// strings and as the bytes of their keys, from its unexported fields.
func (s *Signer) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "webhook.Signer{secrets: %s ×%d}", redact.Placeholder, s.secretCount())
}

// LogValue logs s as the number of its secrets, none of them shown.
func (s *Signer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", "webhook.Signer"), slog.Int("secrets", s.secretCount()))
}

// secretCount returns how many secrets s signs with: none for a nil Signer.
func (s *Signer) secretCount() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Format prints v as "webhook.Verifier{secrets: [redacted] ×n,
// allowLegacy: b}", whatever the verb: a Verifier holds the keys of its
// secrets, which fmt would otherwise print from its unexported fields.
func (v *Verifier) Format(f fmt.State, _ rune) {
	if v == nil {
		v = &Verifier{}
	}
	fmt.Fprintf(f, "webhook.Verifier{secrets: %s ×%d, allowLegacy: %t}", redact.Placeholder, len(v.keys), v.allowLegacy)
}

// LogValue logs v as the number of its secrets, none of them shown, and
// whether it allows legacy requests.
func (v *Verifier) LogValue() slog.Value {
	if v == nil {
		v = &Verifier{}
	}
	return slog.GroupValue(slog.String("type", "webhook.Verifier"), slog.Int("secrets", len(v.keys)),
		slog.Bool("allowLegacy", v.allowLegacy))
}
