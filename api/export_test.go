package api

// Routes returns "METHOD /path" of every route New serves with events on
// or off, for the OpenAPI test.
func Routes(events bool) []string {
	var out []string
	for _, r := range routes(events) {
		out = append(out, r.method+" "+r.path)
	}
	return out
}
