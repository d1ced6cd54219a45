package executor

import (
	"math"
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
			Detail: sanitize(p.Detail, maxBodyBytes), ResponseTime: millis(p.ResponseTime),
		}})
	}

	message := d.Message
	if message == "" {
		message = d.Detail
	}
	out := &jobs.DeploymentResult{
		Success:            overall,
		Message:            sanitize(message, maxBodyBytes),
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
				EnvironmentName: e.env, Success: true, Message: sanitize(e.detail, maxBodyBytes),
			})
		}
		env := &out.EnvironmentResults[i]
		if e.pod != nil {
			env.Pods = append(env.Pods, *e.pod)
		}
		if env.Message == "" {
			env.Message = sanitize(e.detail, maxBodyBytes)
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
		failures[e.env] = append(failures[e.env], sanitize(detail, maxBodyBytes))
	}
	for env, details := range failures {
		out.EnvironmentResults[index[env]].Message = strings.Join(details, "; ")
	}
	return out
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
