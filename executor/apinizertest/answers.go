package apinizertest

import (
	"net/http"
	"strconv"
)

// Wire bodies, in the field order of Apinizer's pages.
type (
	classicSuccess struct {
		Success          bool              `json:"success"`
		DeploymentResult classicDeployment `json:"deploymentResult"`
	}
	classicDeployment struct {
		Success            bool                `json:"success"`
		Message            string              `json:"message"`
		EnvironmentResults []environmentResult `json:"environmentResults"`
	}
	environmentResult struct {
		EnvironmentName string `json:"environmentName"`
		Success         bool   `json:"success"`
		Message         string `json:"message"`
	}
	podsSuccess struct {
		Status           string         `json:"status"`
		DeploymentResult podsDeployment `json:"deploymentResult"`
	}
	podsDeployment struct {
		Success      bool        `json:"success"`
		Message      string      `json:"message,omitempty"`
		ResponseTime int         `json:"responseTime,omitempty"`
		DetailList   []podResult `json:"detailList"`
	}
	podResult struct {
		EnvName      string `json:"envName"`
		PodName      string `json:"podName"`
		PodIP        string `json:"podIp"`
		Success      bool   `json:"success"`
		Detail       string `json:"detail,omitempty"`
		ResponseTime int    `json:"responseTime"`
	}
	classicError struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	podsError struct {
		Status        string `json:"status"`
		ResultMessage string `json:"resultMessage"`
	}
)

// deployment reports (un)deploying a changed resource to envs. Environments
// switched off with FailEnvironment fail; in StylePods only their first pod
// fails, as with a gateway that is partly unreachable. Callers hold s.mu.
func (s *Simulator) deployment(projectName string, envs []string, undeploy bool) (int, any) {
	verb, noun := "Deployed", "Deployment"
	if undeploy {
		verb, noun = "Undeployed", "Undeployment"
	}
	ok, failed := verb+" successfully", noun+" failed: gateway did not respond"
	allOK := true
	for _, e := range envs {
		if s.failing[[2]string{projectName, e}] {
			allOK = false
		}
	}
	message := noun + " completed successfully"
	if !allOK {
		message = noun + " completed with errors"
	}
	if s.style != StyleClassic {
		d := podsDeployment{Success: allOK, Message: message, DetailList: make([]podResult, 0, 2*len(envs))}
		for i, e := range envs {
			fail := s.failing[[2]string{projectName, e}]
			for pod := range 2 {
				r := podResult{
					EnvName: e, PodName: e + "-gateway-" + strconv.Itoa(pod),
					PodIP:   "10.0." + strconv.Itoa(i) + "." + strconv.Itoa(10+pod),
					Success: !(fail && pod == 0), Detail: ok, ResponseTime: 12 + pod,
				}
				switch {
				case !r.Success:
					r.Detail = failed
				case s.style == StyleCurrent:
					// delete-credential.mdx: successful pods carry no detail.
					r.Detail = ""
				}
				d.ResponseTime = max(d.ResponseTime, r.ResponseTime)
				d.DetailList = append(d.DetailList, r)
			}
		}
		if s.style == StyleCurrent {
			d.Message = ""
		} else {
			d.ResponseTime = 0
		}
		return http.StatusOK, podsSuccess{Status: "SUCCESS", DeploymentResult: d}
	}
	d := classicDeployment{Success: allOK, Message: message, EnvironmentResults: make([]environmentResult, 0, len(envs))}
	for _, e := range envs {
		r := environmentResult{EnvironmentName: e, Success: true, Message: ok}
		if s.failing[[2]string{projectName, e}] {
			r.Success, r.Message = false, failed
		}
		d.EnvironmentResults = append(d.EnvironmentResults, r)
	}
	return http.StatusOK, classicSuccess{Success: true, DeploymentResult: d}
}

// errorBody is an error answer in style. StylePods and StyleCurrent report
// every APIOps refusal except a bad token as 400.
func errorBody(style ResponseStyle, status int, code, description string) (int, any) {
	if style != StyleClassic {
		if status != http.StatusUnauthorized {
			status = http.StatusBadRequest
		}
		return status, podsError{Status: "FAILURE", ResultMessage: description}
	}
	return status, classicError{Error: code, ErrorDescription: description}
}
