package webhook

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
)

// payload is a request body in memory, as the dispatcher sends it: the h1
// transport writes its bytes directly (see writeRequest).
type payload struct {
	bytes.Reader
	b []byte
}

func newPayload(b []byte) *payload {
	p := &payload{b: b}
	p.Reset(b)
	return p
}

// Close does nothing: the bytes are the delivery's.
func (*payload) Close() error { return nil }

// defaultUserAgent is what net/http sends when a request has no
// User-Agent header.
const defaultUserAgent = "Go-http-client/1.1"

// writeRequest writes req to w as req.Write does, byte for byte. The
// requests the dispatcher makes (a POST of an unread payload to a plain
// ASCII host, with header names that are tokens and values that need no
// cleaning: see plainHead) it writes itself; any other goes through
// req.Write. In memstore's bench, Request.Write took 4% of the processor
// time: its transfer writer, fmt, a pooled sorter of the headers and a
// string replacer run over every value, for a head that is mostly the
// same from one request to the next.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	var buf [24]headerField
	p, host, ruri, fields, ok := plainHead(req, buf[:0])
	if !ok {
		if p != nil && p.Len() == len(p.b) {
			// net/http writes the head and the body of a reader it knows
			// to be in memory in one go (see newBody).
			req.Body = newBody(p.b)
		}
		return req.Write(w)
	}
	w.WriteString("POST ")
	w.WriteString(ruri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if vs, set := req.Header["User-Agent"]; !set {
		w.WriteString("User-Agent: " + defaultUserAgent + "\r\n")
	} else if len(vs) > 0 && vs[0] != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(vs[0])
		w.WriteString("\r\n")
	}
	w.WriteString("Content-Length: ")
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(len(p.b)), 10))
	w.WriteString("\r\n")
	for _, f := range fields {
		for _, v := range f.values {
			w.WriteString(f.name)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	_, err := w.Write(p.b)
	p.Reset(nil) // read, as req.Write leaves a body
	return err
}

// headerField is a header's name with its values.
type headerField struct {
	name   string
	values []string
}

// plainHead reports whether writeRequest may write req itself: a POST
// without Close, trailers or a transfer encoding, whose body is an unread
// payload of ContentLength bytes (more than none), whose host is plain
// ASCII (letters, digits, dots, hyphens, colons and the brackets of an
// IPv6 address: net/http sends such a host as it is) and whose request URI
// holds no control character; every header name but those req.Write
// writes apart must be a token, and every value free of line breaks and of
// spaces or tabs at either end (net/http drops other names and cleans
// such values). It returns the payload (whenever the body is one), the
// host, the request URI and the other headers, sorted by name as
// req.Write sorts them, appended to fields.
func plainHead(req *http.Request, fields []headerField) (p *payload, host, ruri string, _ []headerField, ok bool) {
	p, _ = req.Body.(*payload)
	if p == nil || p.Len() != len(p.b) || len(p.b) == 0 || req.ContentLength != int64(len(p.b)) ||
		req.Method != http.MethodPost || req.Close || req.Trailer != nil || req.TransferEncoding != nil ||
		req.URL == nil || req.URL.Opaque != "" {
		return p, "", "", fields, false
	}
	host = req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" || !plainHost(host) {
		return p, "", "", fields, false
	}
	ruri = req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if ruri[i] < ' ' || ruri[i] == 0x7f {
			return p, "", "", fields, false
		}
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "User-Agent":
			if len(vs) > 0 && !plainValue(vs[0]) {
				return p, "", "", fields, false
			}
			continue
		}
		if !validToken(k) {
			return p, "", "", fields, false
		}
		for _, v := range vs {
			if !plainValue(v) {
				return p, "", "", fields, false
			}
		}
		fields = append(fields, headerField{k, vs})
	}
	// By insertion: a request has a dozen headers.
	for i := 1; i < len(fields); i++ {
		for j := i; j > 0 && fields[j].name < fields[j-1].name; j-- {
			fields[j], fields[j-1] = fields[j-1], fields[j]
		}
	}
	return p, host, ruri, fields, true
}

// plainHost reports whether every byte of host is a letter, a digit, or
// one of ".-:[]".
func plainHost(host string) bool {
	for i := 0; i < len(host); i++ {
		switch c := host[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// plainValue reports whether net/http writes the header value v as it is:
// without a line break, and without a space or tab at either end.
func plainValue(v string) bool {
	if v == "" {
		return true
	}
	if c := v[0]; c == ' ' || c == '\t' {
		return false
	}
	if c := v[len(v)-1]; c == ' ' || c == '\t' {
		return false
	}
	return strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0
}
