// Command oracle judges TracingPolicy objects with Tetragon's own code: for
// each YAML document on stdin it runs what Tetragon's agent runs when a
// policy is added, short of loading BPF programs:
//
//   - tracingpolicy.FromYAML: strict decoding, CRD defaults, the OpenAPI
//     schema and CEL rules of the CRD;
//   - sensors.SensorsFromPolicy with the tracing sensors registered:
//     argument types, hooks (checked against this kernel's BTF and
//     symbols), operators, the selector compiler, Override rules, lists,
//     limits.
//
// It prints one JSON line first with the kernel features whose probes some
// verdicts depend on, then one JSON line per document:
// {"index":N,"kind":…,"name":…,"accepted":true} or
// {"index":N,…,"accepted":false,"stage":"crd"|"sensors","error":"…"}.
//
// It is test infrastructure for kubectl-qualys-respond, built from
// Tetragon's Go module (see go.mod, and go.main.mod for the development
// branch).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/cilium/tetragon/pkg/bpf"
	"github.com/cilium/tetragon/pkg/btf"
	"github.com/cilium/tetragon/pkg/logger"
	"github.com/cilium/tetragon/pkg/policyfilter"
	"github.com/cilium/tetragon/pkg/sensors"
	_ "github.com/cilium/tetragon/pkg/sensors/tracing"
	"github.com/cilium/tetragon/pkg/tracingpolicy"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Index    int    `json:"index"`
	Kind     string `json:"kind,omitempty"`
	Name     string `json:"name,omitempty"`
	Accepted bool   `json:"accepted"`
	Stage    string `json:"stage,omitempty"`
	Error    string `json:"error,omitempty"`
}

// documents splits a YAML stream on its "---" separator lines; documents
// of comments alone are dropped.
func documents(input []byte) [][]byte {
	var out [][]byte
	var current bytes.Buffer
	content := false
	flush := func() {
		if content {
			out = append(out, append([]byte(nil), current.Bytes()...))
		}
		current.Reset()
		content = false
	}
	scanner := bufio.NewScanner(bytes.NewReader(input))
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "---" || bytes.HasPrefix([]byte(line), []byte("--- ")) {
			flush()
			continue
		}
		if trimmed := bytes.TrimSpace([]byte(line)); len(trimmed) > 0 && trimmed[0] != '#' {
			content = true
		}
		current.WriteString(line)
		current.WriteByte('\n')
	}
	flush()
	return out
}

func tetragonVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/cilium/tetragon" {
			return dep.Version
		}
	}
	return "unknown"
}

func main() {
	// Tetragon logs its progress; the verdicts are on stdout alone.
	logger.DefaultSlogLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oracle: cannot read stdin:", err)
		os.Exit(2)
	}
	// The agent finds the kernel's BTF at start; hooks and argument types are checked against it.
	if err := btf.InitCachedBTF("", ""); err != nil {
		fmt.Fprintln(os.Stderr, "oracle: no kernel BTF:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(map[string]any{
		"tetragon": tetragonVersion(),
		"features": map[string]bool{
			"kprobe_multi":    bpf.HasKprobeMulti(),
			"override_helper": bpf.HasOverrideHelper(),
			"modify_return":   bpf.HasModifyReturn(),
			"signal_helper":   bpf.HasSignalHelper(),
			"large_programs":  bpf.HasProgramLargeSize(),
			"lsm_programs":    bpf.HasLSMPrograms(),
		},
	})
	for i, doc := range documents(input) {
		v := verdict{Index: i}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		_ = yaml.Unmarshal(doc, &meta)
		v.Kind, v.Name = meta.Kind, meta.Metadata.Name
		tp, err := tracingpolicy.FromYAML(string(doc))
		if err != nil {
			v.Stage, v.Error = "crd", err.Error()
			_ = out.Encode(v)
			continue
		}
		if _, err := sensors.SensorsFromPolicy(tp, policyfilter.NoFilterID); err != nil {
			v.Stage, v.Error = "sensors", err.Error()
			_ = out.Encode(v)
			continue
		}
		v.Accepted = true
		_ = out.Encode(v)
	}
}
