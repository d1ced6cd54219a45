package executor

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// apiDeployment is a deploymentResult in every documented shape: per
// environment (environmentResults) or per gateway pod (detailList, and one
// pod's fields at the top level).
type apiDeployment struct {
	Success            *bool   `json:"success"`
	Message            string  `json:"message"`
	ResponseTime       float64 `json:"responseTime"`
	EnvironmentResults []struct {
		EnvironmentName string `json:"environmentName"`
		Success         bool   `json:"success"`
		Message         string `json:"message"`
	} `json:"environmentResults"`
	// The newer per-pod report may carry one pod's fields at the top level,
	// beside or instead of its detailList.
	EnvName    string   `json:"envName"`
	PodName    string   `json:"podName"`
	PodIP      string   `json:"podIp"`
	Detail     string   `json:"detail"`
	DetailList []apiPod `json:"detailList"`
}

// apiPod is one gateway pod's deployment report. Successful pods often carry
// no detail.
type apiPod struct {
	EnvName      string  `json:"envName"`
	PodName      string  `json:"podName"`
	PodIP        string  `json:"podIp"`
	Success      bool    `json:"success"`
	Detail       string  `json:"detail"`
	ResponseTime float64 `json:"responseTime"`
}

// fold normalises Apinizer's deployment report to one entry per environment.
// Per-pod entries (detailList, or a single pod's fields at the top level) are
// grouped by environment in order of first appearance and kept as the
// environment's Pods; an environment succeeded only if every entry for it
// did. The report as a whole succeeded only if Apinizer said so (when it said
// anything) and every environment succeeded: a 200 does not mean every
// gateway took the change.
func (d *apiDeployment) fold() *jobs.DeploymentResult {
	if d == nil {
		return nil
	}
	overall := d.Success == nil || *d.Success
	pods := d.DetailList
	if len(pods) == 0 && (d.EnvName != "" || d.PodName != "" || d.PodIP != "") {
		// {envName, podName, success, detail, detailList: []}: the top
		// level is the only pod report there is.
		pods = []apiPod{{EnvName: d.EnvName, PodName: d.PodName, PodIP: d.PodIP, Success: overall, Detail: d.Detail, ResponseTime: d.ResponseTime}}
	}
	entries := make([]foldEntry, 0, len(d.EnvironmentResults)+len(pods))
	for _, r := range d.EnvironmentResults {
		entries = append(entries, foldEntry{env: r.EnvironmentName, detail: r.Message, success: r.Success})
	}
	for _, p := range pods {
		entries = append(entries, foldEntry{env: p.EnvName, detail: p.Detail, success: p.Success, pod: &jobs.PodResult{
			PodName: sanitize(p.PodName, maxCodeBytes), PodIP: sanitize(p.PodIP, maxCodeBytes), Success: p.Success,
			Detail: clip(p.Detail), ResponseTime: millis(p.ResponseTime),
		}})
	}

	message := d.Message
	if message == "" {
		message = d.Detail
	}
	out := &jobs.DeploymentResult{
		Success:            overall,
		Message:            clip(message),
		EnvironmentResults: []jobs.EnvironmentResult{},
		ResponseTime:       millis(d.ResponseTime),
	}
	index := map[string]int{}
	var failures map[string][]string // failing entries' details per environment
	for _, e := range entries {
		i, seen := index[e.env]
		if !seen {
			i = len(out.EnvironmentResults)
			index[e.env] = i
			out.EnvironmentResults = append(out.EnvironmentResults, jobs.EnvironmentResult{
				EnvironmentName: e.env, Success: true, Message: clip(e.detail),
			})
		}
		env := &out.EnvironmentResults[i]
		if e.pod != nil && len(env.Pods) < maxPods {
			env.Pods = append(env.Pods, *e.pod)
		}
		if env.Message == "" {
			env.Message = clip(e.detail)
		}
		if e.success {
			continue
		}
		out.Success = false
		env.Success = false
		detail := e.detail
		if e.pod != nil && e.pod.PodName != "" {
			detail = e.pod.PodName + ": " + detail
		}
		if failures == nil {
			failures = map[string][]string{}
		}
		failures[e.env] = append(failures[e.env], clip(detail))
	}
	for env, details := range failures {
		out.EnvironmentResults[index[env]].Message = clip(strings.Join(details, "; "))
	}
	return out
}

// maxPods bounds the pods kept per environment: a gateway with more is
// summed up by its environment's success and message.
const maxPods = 64

// scope keeps the environments of d that job names, in Apinizer's order:
// an environment Apinizer reports that the job did not ask for is dropped,
// so that no name Apinizer makes up becomes a metric label or fills a
// result. A job without an environment list (the deletes, which undeploy
// wherever the resource was) keeps at most jobs.MaxEnvironments, with names
// cut to jobs.MaxNameSize. What was dropped is counted in d's message; d's
// verdict is left as Apinizer gave it, so a failure in a dropped
// environment still makes the job partial, and the message says why.
func scope(d *jobs.DeploymentResult, job jobs.Job) {
	if d == nil {
		return
	}
	asked, ok := environments(job)
	kept := d.EnvironmentResults[:0]
	failed := 0
	for _, e := range d.EnvironmentResults {
		switch {
		case ok && !slices.Contains(asked, e.EnvironmentName),
			!ok && len(kept) == jobs.MaxEnvironments:
			if !e.Success {
				failed++
			}
			continue
		case !ok:
			e.EnvironmentName = jobs.Cut(sanitize(e.EnvironmentName, maxBodyBytes), jobs.MaxNameSize)
		}
		kept = append(kept, e)
	}
	if dropped := len(d.EnvironmentResults) - len(kept); dropped > 0 {
		note := fmt.Sprintf(" [%d results for environments the job did not name dropped, %d of them failed]", dropped, failed)
		d.Message = jobs.Cut(d.Message, jobs.MaxMessageSize-len(note)) + note
	}
	clear(d.EnvironmentResults[len(kept):])
	d.EnvironmentResults = kept
}

// environments returns the environments job names, and false for a job
// that names none.
func environments(job jobs.Job) ([]string, bool) {
	switch j := job.(type) {
	case *jobs.CertificateUpdate:
		return j.EnvironmentList, true
	case *jobs.CertificateCreate:
		return j.EnvironmentList, true
	}
	return nil, false
}

// foldEntry is one environment's or pod's report, before grouping.
type foldEntry struct {
	env, detail string
	success     bool
	pod         *jobs.PodResult // nil for a per-environment report
}

// millis rounds a reported response time to whole milliseconds; a negative
// or absurd value (not a duration) is dropped.
func millis(v float64) int64 {
	if v <= 0 || v > 1e12 {
		return 0
	}
	return int64(math.Round(v))
}
