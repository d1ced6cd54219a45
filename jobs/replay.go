package jobs

// ParseReplayOf checks the value of the Apiops-Replay-Of header, which a
// replayed job carries to name the dead-lettered job it replays. It is
// copied into the result, kept for days, so only a job id is accepted:
// the jobId rules (at most MaxIDSize bytes, valid UTF-8, no control
// character or white space). It returns the id and true, or "" and false
// for an empty or malformed value, which the result then leaves out.
func ParseReplayOf(v string) (string, bool) {
	if v == "" || idProblem(v) != "" {
		return "", false
	}
	return v, true
}
