// Command eso-oracle renders template cases with ESO's own template package
// (github.com/external-secrets/external-secrets/pkg/template/v2) so Lockstep's
// conformance tests compare against ESO, not against themselves.
//
// Input (stdin): JSON array of cases. Output (stdout): JSON array of results
// in the same order. Values travel base64-encoded so bytes are exact.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	esapi "github.com/external-secrets/external-secrets/apis/externalsecrets/v1"
	tpl "github.com/external-secrets/external-secrets/pkg/template/v2"
	corev1 "k8s.io/api/core/v1"
)

type tcase struct {
	Name      string            `json:"name"`
	Scope     string            `json:"scope"`
	Target    string            `json:"target"`
	Templates map[string]string `json:"templates"`
	Data      map[string][]byte `json:"data"`
}

type result struct {
	Name        string            `json:"name"`
	Error       *string           `json:"error"`
	Data        map[string][]byte `json:"data"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func run(c tcase) (res result) {
	res.Name = c.Name
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprintf("panic: %v", r)
			res.Error = &msg
		}
	}()
	tpls := make(map[string][]byte, len(c.Templates))
	for k, v := range c.Templates {
		tpls[k] = []byte(v)
	}
	scope := esapi.TemplateScopeValues
	if c.Scope == "KeysAndValues" {
		scope = esapi.TemplateScopeKeysAndValues
	}
	target := esapi.TemplateTargetData
	switch c.Target {
	case "Labels":
		target = esapi.TemplateTargetLabels
	case "Annotations":
		target = esapi.TemplateTargetAnnotations
	}
	secret := &corev1.Secret{}
	if err := tpl.Execute(tpls, c.Data, scope, target, secret); err != nil {
		msg := err.Error()
		res.Error = &msg
		return res
	}
	res.Data, res.Labels, res.Annotations = secret.Data, secret.Labels, secret.Annotations
	return res
}

func main() {
	var cases []tcase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "eso-oracle: reading cases:", err)
		os.Exit(2)
	}
	out := make([]result, 0, len(cases))
	for _, c := range cases {
		out = append(out, run(c))
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "eso-oracle: writing results:", err)
		os.Exit(2)
	}
}
