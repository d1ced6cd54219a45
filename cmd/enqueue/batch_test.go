package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitBatchNamesEachJobWhereItIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		at   []string // where each job is
		errs []string // each error, in order
	}{
		{
			name: "one object is named by its line",
			in:   "\n\n  {\"jobId\":\"a\"}\n",
			at:   []string{"line 3"},
		},
		{
			name: "a pretty-printed object is one job",
			in:   "{\n  \"jobId\": \"a\"\n}\n",
			at:   []string{"line 1"},
		},
		{
			name: "the elements of an array are named by their index, wherever its lines break",
			in:   "[\n {\"jobId\":\"a\"},\n {\"jobId\":\"b\"}\n]",
			at:   []string{"[0]", "[1]"},
		},
		{
			name: "NDJSON lines are named by their number, blank lines counted",
			in:   "{\"jobId\":\"a\"}\n\n{\"jobId\":\"b\"}\r\n",
			at:   []string{"line 1", "line 3"},
		},
		{
			name: "every malformed NDJSON line is reported, and the lines after it read",
			in:   "{\"jobId\":\"a\"}\n{\"jobId\":\n{\"jobId\":\"c\"}\n{\"jobId\" \"d\"}\n{\"jobId\":\"e\"}\n",
			at:   []string{"line 1", "line 3", "line 5"},
			errs: []string{"line 2: malformed JSON: unexpected end of JSON input", "line 4: malformed JSON: invalid character '\"' after object key"},
		},
		{
			name: "a file whose first line is malformed is still read line by line",
			in:   "{\"jobId\":\n{\"jobId\":\"b\"}\n",
			at:   []string{"line 2"},
			errs: []string{"line 1: malformed JSON: unexpected end of JSON input"},
		},
		{
			name: "an array on an NDJSON line is named by the line and the index",
			in:   "{\"jobId\":\"a\"}\n[{\"jobId\":\"b\"},{\"jobId\":\"c\"}]\n",
			at:   []string{"line 1", "line 2 [0]", "line 2 [1]"},
		},
		{
			name: "pretty-printed objects one after another are named by the line each starts on",
			in:   "{\n \"jobId\": \"a\"\n}\n{\n \"jobId\": \"b\"\n}\n",
			at:   []string{"line 1", "line 4"},
		},
		{
			name: "a syntax error in pretty-printed JSON is reported at its line, and ends the reading",
			in:   "{\n \"jobId\": \"a\"\n}\n{\n \"jobId\" \"b\"\n}\n{\"jobId\":\"c\"}\n",
			at:   []string{"line 1"},
			errs: []string{"line 5: malformed JSON: invalid character '\"' after object key"},
		},
		{name: "an empty file has no jobs", in: " \n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries, errs := splitBatch([]byte(tc.in))
			var at, msgs []string
			for _, e := range entries {
				at = append(at, e.at)
			}
			for _, err := range errs {
				msgs = append(msgs, err.Error())
			}
			if diff := cmp.Diff(tc.at, at); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
			if len(msgs) != len(tc.errs) {
				t.Fatalf("errors %q, want %q", msgs, tc.errs)
			}
			for i := range msgs {
				if !strings.HasPrefix(msgs[i], tc.errs[i]) {
					t.Errorf("error %d is %q, want it to start %q", i, msgs[i], tc.errs[i])
				}
			}
		})
	}
}

func TestReadJobsReportsEveryBadJob(t *testing.T) {
	t.Parallel()
	in := `{"jobId":"a","projectName":"P","keyName":"k"}
{"subject":"apiops.key.remove","jobId":"b","projectName":"P","keyName":"k"}
{"jobId":"c","projectName":"P"}
{"jobId":"a","projectName":"P","keyName":"other"}
`
	_, _, err := readJobs(strings.NewReader(in), batchOptions{subject: "apiops.key.delete"})
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		"publish: nothing published, 3 invalid job(s):",
		`line 2: jobs: decode "apiops.key.remove": unknown subject`,
		`line 3: jobs: decode "apiops.key.delete" job "c": keyName: required`,
		`line 4: job id "a" is also the id of line 1, a different job (apiops.key.delete P/k); give each job its own id`,
		validSubjects(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestReadJobsWithNewIDsGivesEveryJobItsOwn(t *testing.T) {
	t.Parallel()
	in := `{"jobId":"a","projectName":"P","keyName":"k"}
{"jobId":"a","projectName":"P","keyName":"k"}
{"projectName":"P","keyName":"no-id"}
`
	list, notes, err := readJobs(strings.NewReader(in), batchOptions{subject: "apiops.key.delete", newIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || len(notes) != 0 {
		t.Fatalf("%d jobs, notes %q: want 3 jobs and no note", len(list), notes)
	}
	seen := map[string]bool{}
	for _, o := range list {
		id := o.job.ID()
		if seen[id] || !strings.HasPrefix(id, "key-delete-"+o.job.Resource().Name+"-") || o.givenID {
			t.Errorf("job %s at %s (given %v): want a new generated id, not looked up", id, o.at, o.givenID)
		}
		seen[id] = true
	}
}
