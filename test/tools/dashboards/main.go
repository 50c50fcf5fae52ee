// dashboard-check: checks Grafana dashboard JSON files against Grafana's dashboard schema as the
// grafana-foundation-sdk models it. Each file is decoded strictly into the SDK's dashboard types
// (unknown fields, wrong types and missing required fields fail, panel options and custom field
// config by the panel type's own schema, every target as a Prometheus query) and then validated by
// the SDK's Validate. On top of that it checks what the project's dashboards promise: schemaVersion
// 39 or later, a stable uid, a Prometheus `datasource` variable, `job` and `instance` variables, and
// every panel querying `${datasource}`.
//
// Usage: dashboard-check FILE...   exits 1 naming each file and its problems, 2 on bad usage.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

const minSchemaVersion = 39

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, file := range os.Args[1:] {
		problems := check(file)
		if len(problems) == 0 {
			fmt.Printf("%s: ok\n", file)
			continue
		}
		failed = true
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "%s: %s\n", file, p)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(file string) []string {
	raw, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	var d dashboard.Dashboard
	if err := noErrors(d.UnmarshalJSONStrict(raw)); err != nil {
		return []string{"schema: " + err.Error()}
	}
	var problems []string
	if err := noErrors(d.Validate()); err != nil {
		problems = append(problems, "schema: "+err.Error())
	}
	if d.SchemaVersion < minSchemaVersion {
		problems = append(problems, fmt.Sprintf("schemaVersion %d: want %d or later", d.SchemaVersion, minSchemaVersion))
	}
	if d.Uid == nil || *d.Uid == "" {
		problems = append(problems, "no uid")
	}
	if d.Title == nil || *d.Title == "" {
		problems = append(problems, "no title")
	}
	problems = append(problems, checkVariables(d.Templating.List)...)
	problems = append(problems, checkPanels(raw, d.Panels)...)
	return problems
}

// noErrors turns the SDK's empty BuildErrors (returned as a non-nil error) into nil.
func noErrors(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}

func checkVariables(vars []dashboard.VariableModel) []string {
	byName := map[string]dashboard.VariableModel{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	var problems []string
	ds, ok := byName["datasource"]
	if !ok {
		problems = append(problems, "templating: no `datasource` variable")
	} else if ds.Type != dashboard.VariableTypeDatasource || ds.Query == nil || ds.Query.String == nil || *ds.Query.String != "prometheus" {
		problems = append(problems, "templating: `datasource` must be a datasource variable of query `prometheus`")
	}
	for _, name := range []string{"job", "instance"} {
		v, ok := byName[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("templating: no `%s` variable", name))
			continue
		}
		if v.Type != dashboard.VariableTypeQuery || !isPromDatasource(v.Datasource) {
			problems = append(problems, fmt.Sprintf("templating: `%s` must be a query variable on ${datasource}", name))
		}
	}
	return problems
}

func isPromDatasource(ref *common.DataSourceRef) bool {
	return ref != nil && ref.Type != nil && *ref.Type == "prometheus" && ref.Uid != nil && *ref.Uid == "${datasource}"
}

// checkPanels checks every panel (rows included): a known panel type, a unique id, the datasource,
// Prometheus targets with an expression, and fieldConfig decoded strictly outside its `custom` part
// (the SDK decodes that part by the panel type's schema but the rest leniently).
func checkPanels(raw []byte, panels []dashboard.PanelOrRowPanel) []string {
	var problems []string
	ids := map[uint32]string{}
	var all []dashboard.Panel
	for _, p := range panels {
		if p.Panel != nil {
			all = append(all, *p.Panel)
		}
		if p.RowPanel != nil {
			all = append(all, p.RowPanel.Panels...)
		}
	}
	for i, p := range all {
		name := fmt.Sprintf("panel %d", i)
		if p.Title != nil {
			name = fmt.Sprintf("panel %q", *p.Title)
		}
		if p.Id == nil {
			problems = append(problems, name+": no id")
		} else if other, dup := ids[*p.Id]; dup {
			problems = append(problems, fmt.Sprintf("%s: id %d already used by %s", name, *p.Id, other))
		} else {
			ids[*p.Id] = name
		}
		if _, known := cog.ConfigForPanelcfgVariant(p.Type); !known {
			problems = append(problems, fmt.Sprintf("%s: panel type %q has no schema in the SDK", name, p.Type))
		}
		if p.Options == nil {
			problems = append(problems, name+": no options")
		}
		if !isPromDatasource(p.Datasource) {
			problems = append(problems, name+": datasource must be {type: prometheus, uid: ${datasource}}")
		}
		if len(p.Targets) == 0 {
			problems = append(problems, name+": no targets")
		}
		for j, t := range p.Targets {
			q, ok := t.(*prometheus.Dataquery)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: target %d is not a Prometheus query (%T): give it datasource {type: prometheus}", name, j, t))
				continue
			}
			if strings.TrimSpace(q.Expr) == "" {
				problems = append(problems, fmt.Sprintf("%s: target %d has no expr", name, j))
			}
			if q.RefId == nil || *q.RefId == "" {
				problems = append(problems, fmt.Sprintf("%s: target %d has no refId", name, j))
			}
			if !isPromDatasource(q.Datasource) {
				problems = append(problems, fmt.Sprintf("%s: target %d: datasource must be {type: prometheus, uid: ${datasource}}", name, j))
			}
		}
	}
	problems = append(problems, strictFieldConfigs(raw)...)
	return problems
}

// strictFieldConfigs decodes each panel's fieldConfig with unknown fields refused (`custom` is
// free-form in this type and was checked by the SDK against the panel type's schema).
func strictFieldConfigs(raw []byte) []string {
	var doc struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	var walk func(panels []json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for i, p := range panels {
			var fields struct {
				Title       string            `json:"title"`
				FieldConfig json.RawMessage   `json:"fieldConfig"`
				Panels      []json.RawMessage `json:"panels"`
			}
			if err := json.Unmarshal(p, &fields); err != nil {
				problems = append(problems, fmt.Sprintf("panel %d: %v", i, err))
				continue
			}
			walk(fields.Panels)
			if fields.FieldConfig == nil {
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(fields.FieldConfig))
			dec.DisallowUnknownFields()
			var fc dashboard.FieldConfigSource
			if err := dec.Decode(&fc); err != nil {
				problems = append(problems, fmt.Sprintf("panel %q: fieldConfig: %v", fields.Title, err))
			}
		}
	}
	walk(doc.Panels)
	return problems
}
