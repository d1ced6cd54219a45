package jobs_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apiops-worker/apiops-worker/jobs"
)

func TestResultJSONWritesANullJobIDOnlyWhenThereIsNone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    jobs.Result
		want []string
	}{
		{"a result without a job id has jobId null and its stream sequence", jobs.Result{StreamSeq: 42, Status: jobs.StatusFailed},
			[]string{`"jobId":null`, `"streamSeq":42`, `"status":"failed"`}},
		{"a result with a job id keeps it and has no stream sequence", jobs.Result{JobID: "j-1", Status: jobs.StatusSucceeded},
			[]string{`"jobId":"j-1"`, `"status":"succeeded"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := json.Marshal(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("%s lacks %s", data, w)
				}
			}
			if strings.Count(string(data), `"jobId"`) != 1 {
				t.Errorf("%s: want exactly one jobId", data)
			}
			if tt.r.StreamSeq == 0 && strings.Contains(string(data), "streamSeq") {
				t.Errorf("%s: streamSeq set on a result with a job id", data)
			}
			var back jobs.Result
			if err := json.Unmarshal(data, &back); err != nil || back.JobID != tt.r.JobID || back.StreamSeq != tt.r.StreamSeq {
				t.Errorf("round trip: %+v, %v; want %+v", back, err, tt.r)
			}
		})
	}
}
