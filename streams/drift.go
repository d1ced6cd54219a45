package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Drift compares the streams and consumers that exist with the topology cfg
// and describes each setting Provision would change, such as
// "stream APIOPS_RESULTS: max age 24h0m0s, want 168h0m0s". Provision resets
// a compatible object to cfg without a word, so a caller logs these first:
// an operator who tuned an object by hand learns that the worker undid it.
// Missing objects are no drift.
func Drift(ctx context.Context, js jetstream.JetStream, cfg Config) ([]string, error) {
	var out []string
	for _, want := range []jetstream.StreamConfig{cfg.JobsStream(), cfg.ResultsStream(), cfg.DeadLetterStream(), cfg.AdvisoryStream()} {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("streams: drift of stream %s: %w", want.Name, err)
		}
		have := s.CachedInfo().Config
		d := differ{what: "stream " + want.Name}
		d.check("subjects", !slices.Equal(have.Subjects, want.Subjects), have.Subjects, want.Subjects)
		d.check("retention", have.Retention != want.Retention, have.Retention, want.Retention)
		d.check("discard", have.Discard != want.Discard, have.Discard, want.Discard)
		d.check("storage", have.Storage != want.Storage, have.Storage, want.Storage)
		d.check("replicas", have.Replicas != want.Replicas, have.Replicas, want.Replicas)
		d.check("max age", have.MaxAge != want.MaxAge, have.MaxAge, want.MaxAge)
		d.check("duplicate window", want.Duplicates != 0 && have.Duplicates != want.Duplicates, have.Duplicates, want.Duplicates)
		out = append(out, d.out...)
	}
	for _, c := range []struct {
		stream string
		want   jetstream.ConsumerConfig
	}{{Jobs, cfg.ConsumerConfig()}, {Advisories, cfg.AdvisoryConsumerConfig()}} {
		cons, err := js.Consumer(ctx, c.stream, c.want.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("streams: drift of consumer %s: %w", c.want.Durable, err)
		}
		have, want := cons.CachedInfo().Config, c.want
		d := differ{what: "consumer " + c.stream + "/" + want.Durable}
		d.check("ack wait", have.AckWait != want.AckWait, have.AckWait, want.AckWait)
		d.check("max deliver", want.MaxDeliver != 0 && have.MaxDeliver != want.MaxDeliver, have.MaxDeliver, want.MaxDeliver)
		d.check("max ack pending", want.MaxAckPending != 0 && have.MaxAckPending != want.MaxAckPending, have.MaxAckPending, want.MaxAckPending)
		d.check("filter subject", have.FilterSubject != want.FilterSubject, have.FilterSubject, want.FilterSubject)
		d.check("filter subjects", !slices.Equal(have.FilterSubjects, want.FilterSubjects), have.FilterSubjects, want.FilterSubjects)
		d.check("ack policy", have.AckPolicy != want.AckPolicy, have.AckPolicy, want.AckPolicy)
		out = append(out, d.out...)
	}
	return out, nil
}

// differ collects the differences of one object.
type differ struct {
	what string
	out  []string
}

func (d *differ) check(setting string, differs bool, have, want any) {
	if differs {
		d.out = append(d.out, fmt.Sprintf("%s: %s %v, want %v", d.what, setting, have, want))
	}
}
