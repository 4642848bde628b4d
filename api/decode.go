package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeBody reads the JSON object in r's body into dst, a pointer to a
// struct. The body is capped at max bytes (413 above it: at once when its
// Content-Length says so, else when the read passes the cap), must be
// sent as application/json without a content coding (415 otherwise), and
// must be exactly one JSON object whose fields all belong to dst (400
// otherwise, naming the field when one is at fault). When optional is set
// an empty body is accepted and leaves dst unchanged, whatever its
// Content-Type and Content-Encoding.
//
// Every error it returns is an *apiError.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, dst any, optional bool) error {
	if r.ContentLength > max {
		// Refused before a byte is read: a client that sent Expect:
		// 100-continue is answered at once rather than asked for a body
		// that would be cut off.
		return errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes", max))
	}
	var data []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if err != nil {
			if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
					fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
			}
			return errorf(http.StatusBadRequest, CodeInvalidJSON, "the request body could not be read")
		}
	}
	if len(bytes.TrimLeft(data, " \t\r\n")) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "a JSON object is required as the request body")
	}
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if err := checkIdentityEncoding(r.Header.Values("Content-Encoding")); err != nil {
		return err
	}
	return decodeJSON(data, dst)
}

// checkIdentityEncoding accepts a body sent without a content coding
// (none named, or identity). A compressed body is refused as such rather
// than read as JSON and answered as malformed, and a body that names a
// coding it was not sent with is not read as if it had named none.
func checkIdentityEncoding(values []string) error {
	for _, v := range values {
		for coding := range strings.SplitSeq(v, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
					"the request body must be sent without a content coding, not "+quoteShort(c))
			}
		}
	}
	return nil
}

// checkJSONContentType accepts application/json and application/*+json,
// with any parameters.
func checkJSONContentType(ct string) error {
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"the request body must be sent with Content-Type: application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"the request body must be application/json, not "+quoteShort(ct))
	}
	return nil
}

// decodeJSON decodes data, which must hold exactly one JSON object with
// only the fields of dst, into dst. Every error it returns is an *apiError
// with status 400.
//
// Data must be UTF-8, as JSON between systems must be (RFC 8259): where
// encoding/json would replace each invalid byte with U+FFFD, and store a
// URL, a description or a header value other than the one sent, the body
// is refused.
func decodeJSON(data []byte, dst any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "the request body must be a JSON object")
	}
	if n := invalidUTF8(data); n >= 0 {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("the request body is not valid UTF-8 (byte %d)", n))
	}
	if err := checkKeys(data, reflect.TypeOf(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, reflect.TypeOf(dst))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "the request body must hold one JSON object and nothing after it")
	}
	return nil
}

// invalidUTF8 returns the offset of the first byte of data that is not
// part of a valid UTF-8 sequence, or -1 when data is valid UTF-8.
func invalidUTF8(data []byte) int {
	if utf8.Valid(data) {
		return -1
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// checkKeys refuses top-level keys that are not exactly a json tag of dst
// (encoding/json alone would take "URL" for "url") and keys given twice,
// at the top level or inside an object decoded into a map ("headers"),
// where encoding/json would keep the last silently, and null members of
// such an object (see checkMembers). It leaves syntax
// errors to the decoder, which reports them precisely.
func checkKeys(data []byte, dst reflect.Type) error {
	for dst.Kind() == reflect.Pointer {
		dst = dst.Elem()
	}
	if dst.Kind() != reflect.Struct {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := make(map[string]bool, dst.NumField())
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if !hasTag(dst, key) {
			return fieldError(http.StatusBadRequest, CodeUnknownField, shorten(key),
				"unknown field "+quoteShort(key)+"; this route does not take it (names are case-sensitive)")
		}
		if seen[key] {
			return fieldError(http.StatusBadRequest, CodeValidation, key, key+" is given twice")
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil
		}
		if ft := fieldType(dst, key); ft != nil && ft.Kind() == reflect.Map {
			if err := checkMembers(key, value); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMembers refuses a member that the JSON object raw, the value of
// the map field named field, gives twice (compared after unescaping), or
// gives as null, which encoding/json would store as an empty value where
// the client may have meant to remove it. Anything but an object, and a
// syntax error, are left to the decoder.
func checkMembers(field string, raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		at := field + "." + shorten(key)
		if seen[key] {
			return fieldError(http.StatusBadRequest, CodeValidation, at, field+": "+quoteShort(key)+" is given twice")
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil
		}
		if string(value) == "null" {
			return fieldError(http.StatusBadRequest, CodeValidation, at,
				field+": "+quoteShort(key)+" is null; give it a value, or leave it out to remove it")
		}
	}
	return nil
}

// hasTag reports whether struct type t has a field whose json name is key.
func hasTag(t reflect.Type, key string) bool {
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == key {
			return true
		}
	}
	return false
}

// jsonError turns an encoding/json error from decoding into a value of type
// dst into a 400 that says what is wrong without echoing more than a short
// piece of the input.
func jsonError(err error, dst reflect.Type) *apiError {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("malformed JSON near byte %d", se.Offset))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "the JSON body ends before the object is complete")
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			return errorf(http.StatusBadRequest, CodeInvalidJSON, "the request body must be a JSON object")
		}
		if ft := fieldType(dst, field); ft != nil && ft != te.Type && (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map) {
			// A bad element: name the container's type.
			return fieldError(http.StatusBadRequest, CodeValidation, field,
				fmt.Sprintf("%s must be %s; it holds a %s", field, jsonTypeName(ft), te.Value))
		}
		return fieldError(http.StatusBadRequest, CodeValidation, field,
			fmt.Sprintf("%s must be %s, not %s", field, jsonTypeName(te.Type), te.Value))
	}
	// encoding/json reports unknown fields with an untyped error whose text
	// is documented by example only; the match is confined to this spot.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, uerr := strconv.Unquote(name)
		if uerr != nil {
			name = "?"
		}
		return fieldError(http.StatusBadRequest, CodeUnknownField, shorten(name),
			"unknown field "+quoteShort(name)+"; this route does not take it")
	}
	return errorf(http.StatusBadRequest, CodeInvalidJSON, "the request body is not valid JSON for this route")
}

// fieldType returns the type, pointers removed, of the field at the dotted
// JSON path in t, or nil.
func fieldType(t reflect.Type, path string) reflect.Type {
	for name := range strings.SplitSeq(path, ".") {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return nil
		}
		var next reflect.Type
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == name {
				next = f.Type
				break
			}
		}
		t = next
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// jsonTypeName names a Go type the way a JSON client thinks of it.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a value of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Struct:
		return "an object"
	}
	return "a value of another type"
}

// shorten keeps at most 64 bytes of s, cut on a rune boundary.
func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quoteShort quotes s, shortened, for a message.
func quoteShort(s string) string { return strconv.Quote(shorten(s)) }
