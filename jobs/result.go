package jobs

import (
	"strings"
	"time"
)

// Status is a job's final state.
type Status string

// Final job states, as fixed by the wire contract.
const (
	// StatusSucceeded: Apinizer applied the change and deployed it everywhere.
	StatusSucceeded Status = "succeeded"
	// StatusPartial: Apinizer applied the change but at least one
	// environment's deployment failed.
	StatusPartial Status = "partial"
	// StatusFailed: the change was not applied.
	StatusFailed Status = "failed"
	// StatusSuperseded: a newer job for the same resource was applied first,
	// so this one was skipped.
	StatusSuperseded Status = "superseded"
	// StatusUnchanged: a certificate.apply found its certificate already
	// served in every listed environment and wrote nothing.
	StatusUnchanged Status = "unchanged"
)

// Result is the event published once for every job that reaches a final state,
// on ResultSubject(job subject).
type Result struct {
	JobID        string `json:"jobId"`
	Subject      string `json:"subject"`
	ProjectName  string `json:"projectName"`
	ResourceName string `json:"resourceName"`
	Status       Status `json:"status"`
	// Attempts counts the Apinizer HTTP attempts made for the job, across
	// in-process retries and redeliveries.
	Attempts         int               `json:"attempts"`
	StartedAt        time.Time         `json:"startedAt"`
	FinishedAt       time.Time         `json:"finishedAt"`
	DeploymentResult *DeploymentResult `json:"deploymentResult"`
	Error            *ResultError      `json:"error"`
	// SupersededBy names the job whose application made this one obsolete;
	// set only with StatusSuperseded.
	SupersededBy string `json:"supersededBy,omitempty"`
	// ReplayOf names the dead-lettered job this job replays, if it does.
	ReplayOf string `json:"replayOf,omitempty"`
	// Live is what Apinizer serves afterwards, read back, one entry per
	// environment of a certificate job that ended succeeded, partial or
	// unchanged. Absent for other jobs, and when the read-back failed.
	Live []LiveCertificate `json:"live,omitempty"`
	// StreamSeq is the job message's sequence in the jobs stream, set on
	// the result of a message that names no usable job id (its jobId is
	// then null): the only key such a result has.
	StreamSeq uint64 `json:"streamSeq,omitempty"`
}

// LiveCertificate is the certificate Apinizer serves in one environment, as
// read back after a certificate job.
type LiveCertificate struct {
	EnvironmentName string `json:"environmentName"`
	// SHA1Thumbprint is upper-case hex without separators; empty when the
	// environment serves no certificate of that name.
	SHA1Thumbprint string    `json:"sha1Thumbprint"`
	SubjectDN      string    `json:"subjectDn"`
	NotBefore      time.Time `json:"notBefore,omitzero"`
	NotAfter       time.Time `json:"notAfter,omitzero"`
}

// DeploymentResult is Apinizer's report of deploying (or undeploying) the
// changed resource, normalised to one entry per environment.
type DeploymentResult struct {
	Success            bool                `json:"success"`
	Message            string              `json:"message"`
	EnvironmentResults []EnvironmentResult `json:"environmentResults"`
	// ResponseTime is the deployment's duration in milliseconds, where
	// Apinizer reports one (its per-pod answers do).
	ResponseTime int64 `json:"responseTime,omitempty"`
}

// EnvironmentResult is the deployment outcome in one environment.
type EnvironmentResult struct {
	EnvironmentName string `json:"environmentName"`
	Success         bool   `json:"success"`
	Message         string `json:"message"`
	// Pods are the gateway pods of the environment, where Apinizer reports
	// its deployment per pod.
	Pods []PodResult `json:"pods,omitempty"`
}

// PodResult is the deployment outcome on one gateway pod, with Apinizer's
// field names.
type PodResult struct {
	PodName string `json:"podName"`
	PodIP   string `json:"podIp,omitempty"`
	Success bool   `json:"success"`
	// Detail is Apinizer's text; successful pods often have none.
	Detail string `json:"detail,omitempty"`
	// ResponseTime is the pod's answer time in milliseconds.
	ResponseTime int64 `json:"responseTime,omitempty"`
}

// ResultError explains a failed job. Code is one of the project's stable
// codes (docs/jobs.md), the same whichever revision of Apinizer answered.
type ResultError struct {
	Code string `json:"code"`
	// ApinizerError is Apinizer's own error token, where it sent one
	// ("bad_request", "unauthorized_client", "FAILURE").
	ApinizerError string `json:"apinizerError,omitempty"`
	Message       string `json:"message"`
	HTTPStatus    int    `json:"httpStatus,omitempty"`
	Retryable     bool   `json:"retryable"`
}

// ResultSubjectPrefix is the prefix of every result subject.
const ResultSubjectPrefix = "apiops.results."

// ResultSubject maps a job subject to its result subject:
// "apiops.certificate.update" becomes "apiops.results.certificate.update".
// A subject outside the apiops namespace maps to "apiops.results.invalid".
func ResultSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, "apiops.")
	if !ok || rest == "" || strings.HasPrefix(rest, "results.") {
		return ResultSubjectPrefix + "invalid"
	}
	return ResultSubjectPrefix + rest
}

// ResultMsgID is the Nats-Msg-Id of a job's result, derived from the job id so
// that the results stream deduplicates a republished result.
func ResultMsgID(jobID string) string { return "result:" + jobID }
