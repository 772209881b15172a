package sipside

import (
	"context"
	"log/slog"
)

// redactHandler wraps the handler given to sipgo. sipgo logs whole messages
// (attribute "data") at Error when it cannot parse them; STYLE.md allows
// bodies in logs only at Debug, so above Debug such attributes are replaced.
type redactHandler struct {
	h slog.Handler
}

func isBodyKey(k string) bool { return k == "data" || k == "body" || k == "msg_data" }

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return r.h.Enabled(ctx, l)
}

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level <= slog.LevelDebug {
		return r.h.Handle(ctx, rec)
	}
	redact := false
	rec.Attrs(func(a slog.Attr) bool {
		if isBodyKey(a.Key) {
			redact = true
			return false
		}
		return true
	})
	if !redact {
		return r.h.Handle(ctx, rec)
	}
	nr := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		if isBodyKey(a.Key) {
			a = slog.String(a.Key, "[redacted: logged at debug only]")
		}
		nr.AddAttrs(a)
		return true
	})
	return r.h.Handle(ctx, nr)
}

func (r redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		if isBodyKey(a.Key) {
			a = slog.String(a.Key, "[redacted]")
		}
		out[i] = a
	}
	return redactHandler{h: r.h.WithAttrs(out)}
}

func (r redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h: r.h.WithGroup(name)}
}
