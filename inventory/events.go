package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiops-worker/apiops-worker/streams"
)

// Event is the body of an expiry event on
// streams.SubjectCertificateExpiring (CONTRACT.md, "Events").
type Event struct {
	ProjectName     string    `json:"projectName"`
	CertificateName string    `json:"certificateName"`
	EnvironmentName string    `json:"environmentName"`
	SHA1Thumbprint  string    `json:"sha1Thumbprint"`
	NotAfter        time.Time `json:"notAfter"`
	// DaysLeft is the whole days until NotAfter, rounded up: 0 or less once
	// the certificate has expired, 1 on its last day.
	DaysLeft int `json:"daysLeft"`
}

// newEvent is e's event at now.
func newEvent(e entry, now time.Time) Event {
	return Event{
		ProjectName: e.project, CertificateName: e.certificate, EnvironmentName: e.environment,
		SHA1Thumbprint: e.thumbprint, NotAfter: e.notAfter.UTC(),
		DaysLeft: DaysLeft(e.notAfter, now),
	}
}

// eventID is the event's Nats-Msg-Id: the same for every round of one UTC
// day, so that the events stream, whose duplicate window is a day, keeps
// one event per certificate, environment, thumbprint and day, whichever
// replica published it. Names cannot hold "/" (Apinizer's path rules).
func eventID(e entry, now time.Time) string {
	return fmt.Sprintf("certificate.expiring/%s/%s/%s/%s/%s", e.project, e.certificate, e.environment, e.thumbprint, now.UTC().Format(time.DateOnly))
}

// publisher publishes expiry events, and skips those it already published
// that day: the stream would drop them as duplicates anyway, but a round
// need not resend hundreds of events every interval.
type publisher struct {
	js   jetstream.JetStream
	sent map[string]bool // event ids of the current day
	day  string
}

// publish sends e's event unless already sent today. duplicate says the
// stream already had it (sent by another replica, or before a restart).
func (p *publisher) publish(ctx context.Context, e entry, now time.Time) (sent, duplicate bool, err error) {
	if day := now.UTC().Format(time.DateOnly); day != p.day {
		p.day, p.sent = day, map[string]bool{}
	}
	id := eventID(e, now)
	if p.sent[id] {
		return false, false, nil
	}
	body, err := json.Marshal(newEvent(e, now))
	if err != nil {
		return false, false, err
	}
	msg := &nats.Msg{Subject: streams.SubjectCertificateExpiring, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return false, false, fmt.Errorf("inventory: publish expiry event %s: %w", id, err)
	}
	p.sent[id] = true
	return true, ack.Duplicate, nil
}
