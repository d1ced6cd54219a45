package jobs

import (
	"encoding/json"
	"strconv"
)

// InvalidResultSubject receives the result of a message on a subject that
// is no job subject and that names no usable job id.
const InvalidResultSubject = ResultSubjectPrefix + "invalid"

// MarshalJSON writes jobId as null when the result names no job: the result
// of a message with no usable job id, keyed by StreamSeq instead.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // without this method
	if r.JobID != "" {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		JobID *string `json:"jobId"` // shallower, so it wins over plain's
		plain
	}{nil, plain(r)})
}

// SeqResultMsgID is the Nats-Msg-Id of the result of the job message with
// stream sequence seq that names no usable job id, so that the results
// stream deduplicates it as it does ResultMsgID.
func SeqResultMsgID(streamSeq uint64) string {
	return "result:seq:" + strconv.FormatUint(streamSeq, 10)
}
