package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// countingHandler counts the WithAttrs calls made on it, the formatting
// that a delivery's logger puts off until a line is written.
type countingHandler struct {
	slog.Handler
	withAttrs *int
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	*h.withAttrs++
	return countingHandler{h.Handler.WithAttrs(as), h.withAttrs}
}

func TestDeliveryLogger(t *testing.T) {
	t.Parallel()
	t.Run("a line the level drops formats none of the delivery's attributes", func(t *testing.T) {
		t.Parallel()
		n := 0
		h := countingHandler{slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}), &n}
		d := &delivery{base: slog.New(h)}
		d.with("subject", "apiops.key.delete", "stream_seq", uint64(7))
		d.logger().Info("job finished", "status", "succeeded")
		if n != 0 {
			t.Errorf("WithAttrs called %d times for a dropped line, want 0", n)
		}
		d.logger().Warn("job failed")
		d.logger().Warn("job failed again")
		if n != 1 {
			t.Errorf("WithAttrs called %d times for two lines of one logger, want 1", n)
		}
	})
	t.Run("a line carries the attributes given before its logger was taken", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		d := &delivery{base: slog.New(slog.NewTextHandler(&buf, nil)), attrs: make([]slog.Attr, 0, 6)}
		d.with("subject", "apiops.key.delete", "stream_seq", uint64(7), "delivery", uint64(1))
		before := d.logger()
		d.with("job_id", "j-1", "attempt", 2)
		before.Info("first")
		d.logger().Info("second", "status", "succeeded")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
		}
		if want := "msg=first subject=apiops.key.delete stream_seq=7 delivery=1"; !strings.HasSuffix(lines[0], want) {
			t.Errorf("first line %q, want it to end in %q", lines[0], want)
		}
		if want := "msg=second subject=apiops.key.delete stream_seq=7 delivery=1 job_id=j-1 attempt=2 status=succeeded"; !strings.HasSuffix(lines[1], want) {
			t.Errorf("second line %q, want it to end in %q", lines[1], want)
		}
	})
	t.Run("the handler's groups and attributes pass through", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		d := &delivery{base: slog.New(slog.NewTextHandler(&buf, nil))}
		d.with("job_id", "j-2")
		d.logger().WithGroup("call").With("attempt", 3).Log(context.Background(), slog.LevelInfo, "retrying")
		if want := "msg=retrying job_id=j-2 call.attempt=3\n"; !strings.HasSuffix(buf.String(), want) {
			t.Errorf("line %q, want it to end in %q", buf.String(), want)
		}
	})
}

// BenchmarkDeliveryLogger is a delivery's logging on the happy path: its
// attributes, then the line that says how it ended.
func BenchmarkDeliveryLogger(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelInfo} {
		b.Run("level="+level.String(), func(b *testing.B) {
			base := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level}))
			b.ReportAllocs()
			for b.Loop() {
				d := &delivery{base: base, attrs: make([]slog.Attr, 0, 6)}
				d.with("subject", "apiops.key.delete", "stream_seq", uint64(12345), "delivery", uint64(1))
				d.with("job_id", "job-000123", "project", "Bench")
				d.with("attempt", 1)
				d.logger().Info("job finished", "status", "succeeded", "attempts", 1)
			}
		})
	}
}
