package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable the config reads.
const EnvPrefix = "FELHOM_AGENT_"

// applyEnv overlays FELHOM_AGENT_<PATH> variables, PATH being the json
// keys joined by "_" in upper case (FELHOM_AGENT_PROXMOX_TOKEN). Lists are
// comma-separated. An unknown FELHOM_AGENT_ variable is an error: a typo
// must not silently leave the file's value in force.
func applyEnv(cfg *Config, environ []string) error {
	targets := map[string]reflect.Value{}
	collectEnvTargets(reflect.ValueOf(cfg).Elem(), "", targets)
	var unknown []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		field, ok := targets[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		if err := setFromEnv(field, v); err != nil {
			return fmt.Errorf("environment %s: %w", k, err)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("environment %s: unknown variable (known: %s)", unknown[0], strings.Join(EnvNames(), ", "))
	}
	return nil
}

// EnvNames lists every environment variable the config reads.
func EnvNames() []string {
	targets := map[string]reflect.Value{}
	var c Config
	collectEnvTargets(reflect.ValueOf(&c).Elem(), "", targets)
	names := make([]string, 0, len(targets))
	for k := range targets {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func collectEnvTargets(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + strings.ToUpper(name)
		fv := v.Field(i)
		switch {
		case f.Type == reflect.TypeOf(Secret{}), f.Type == reflect.TypeOf(Duration{}):
			out[EnvPrefix+key] = fv
		case f.Type.Kind() == reflect.Struct:
			collectEnvTargets(fv, key+"_", out)
		case f.Type.Kind() == reflect.String, f.Type.Kind() == reflect.Bool,
			f.Type.Kind() == reflect.Int, f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			out[EnvPrefix+key] = fv
		}
	}
}

func setFromEnv(field reflect.Value, v string) error {
	switch field.Interface().(type) {
	case Secret:
		field.Set(reflect.ValueOf(NewSecret(v)))
		return nil
	case Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. \"30s\")", v)
		}
		field.Set(reflect.ValueOf(Duration{d}))
		return nil
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(v)
	case reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", v)
		}
		field.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("invalid integer %q", v)
		}
		field.SetInt(int64(n))
	case reflect.Slice:
		var items []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		field.Set(reflect.ValueOf(items))
	}
	return nil
}
