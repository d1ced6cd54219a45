package executor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/apiops-worker/apiops-worker/jobs"
)

// environmentsTTL is how long a project's environments are trusted before
// they are read again. A name missing from a cached list is always checked
// against a fresh read, so a new environment is never refused for the
// cache's sake; a removed one is refused by Apinizer itself.
const environmentsTTL = 30 * time.Second

// Environments reads the environments of a project (GET
// …/projects/{projectName}/environments/), retrying like any idempotent
// call, and returns their names. A project that does not exist, or that the
// token's user cannot see, is an *APIError whose StableCode is
// project_not_found.
func (c *Client) Environments(ctx context.Context, project string) ([]string, error) {
	u, err := apiopsURL(c.base, project, lit("environments"))
	if err != nil {
		return nil, err
	}
	body, err := c.read(ctx, &request{method: http.MethodGet, url: u.String()}, c.retry.NewBackOff())
	if err != nil {
		return nil, err
	}
	return parseEnvironments(body)
}

// apiEnvironment is an environment in the documented answer; the
// environment's name is "name", and "environmentName" is accepted where a
// revision names it so.
type apiEnvironment struct {
	Name            string `json:"name"`
	EnvironmentName string `json:"environmentName"`
}

// parseEnvironments reads a get-environments answer: {"status"|"success",
// "resultList": [environment], "resultCount"} as documented, the list under
// "result" or "environmentList" as other answers of the API put theirs, and
// entries that are bare names.
func parseEnvironments(body []byte) ([]string, error) {
	var b struct {
		ResultList      []json.RawMessage `json:"resultList"`
		Result          []json.RawMessage `json:"result"`
		EnvironmentList []json.RawMessage `json:"environmentList"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "unparseable environments: " + excerpt(body)}
		}
	}
	list := b.ResultList
	for _, l := range [][]json.RawMessage{b.Result, b.EnvironmentList} {
		if list == nil {
			list = l
		}
	}
	if list == nil {
		return nil, &APIError{StatusCode: http.StatusOK, Code: CodeInvalidResponse, Message: "environments answer without resultList: " + excerpt(body)}
	}
	names := make([]string, 0, len(list))
	for _, raw := range list {
		var e apiEnvironment
		if err := json.Unmarshal(raw, &e.Name); err != nil {
			_ = json.Unmarshal(raw, &e)
		}
		name := cmp.Or(e.Name, e.EnvironmentName)
		if name != "" {
			names = append(names, sanitize(name, maxCodeBytes))
		}
	}
	return names, nil
}

// environmentCache holds each project's environments for environmentsTTL.
// Its zero value is ready to use.
type environmentCache struct {
	mu   sync.Mutex
	byID map[string]cachedEnvironments
}

type cachedEnvironments struct {
	names []string
	at    time.Time
}

func (ec *environmentCache) get(project string, now time.Time) ([]string, bool) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	e, ok := ec.byID[project]
	return e.names, ok && now.Sub(e.at) < environmentsTTL
}

func (ec *environmentCache) put(project string, names []string, now time.Time) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.byID == nil {
		ec.byID = map[string]cachedEnvironments{}
	}
	ec.byID[project] = cachedEnvironments{names: names, at: now}
}

// unknownEnvironments returns the names in envs that project does not have:
// from the cache when it knows them all, else from a fresh read.
func (c *Client) unknownEnvironments(ctx context.Context, project string, envs []string) ([]string, error) {
	if names, ok := c.envs.get(project, time.Now()); ok && len(missing(envs, names)) == 0 {
		return nil, nil
	}
	names, err := c.Environments(ctx, project)
	if err != nil {
		return nil, err
	}
	c.envs.put(project, names, time.Now())
	return missing(envs, names), nil
}

// missing returns the names in want that have is without.
func missing(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// liveIn returns what live says each of envs serves, in the order of envs;
// an environment that serves no certificate of the name has an entry with
// no thumbprint.
func liveIn(live []CertificateEnvironment, envs []string) []jobs.LiveCertificate {
	out := make([]jobs.LiveCertificate, 0, len(envs))
	for _, env := range envs {
		l := jobs.LiveCertificate{EnvironmentName: env}
		if i := slices.IndexFunc(live, func(e CertificateEnvironment) bool { return e.EnvironmentName == env }); i >= 0 {
			e := live[i]
			l.SHA1Thumbprint, l.SubjectDN = e.SHA1Thumbprint, e.SubjectDN
			l.NotBefore, l.NotAfter = parseDate(e.StartDate), parseDate(e.EndDate)
		}
		out = append(out, l)
	}
	return out
}
