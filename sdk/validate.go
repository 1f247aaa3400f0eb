package sdk

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/apiscope"
)

var (
	capIDRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	semverRE  = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$`)
	invalidRE = regexp.MustCompile(`[^a-z0-9_.]+`)
)

// ReservedNamespace is the capability namespace the SDK keeps for itself.
const ReservedNamespace = "sdk"

// CheckCapabilityID reports whether id is a valid capability ID; the error
// says how to fix it.
func CheckCapabilityID(id string) error {
	if capIDRE.MatchString(id) {
		if strings.HasPrefix(id, ReservedNamespace+".") {
			return fmt.Errorf("capability %q: the %q namespace is reserved for the SDK", id, ReservedNamespace)
		}
		return nil
	}
	example := "storage.list"
	if s := strings.Trim(invalidRE.ReplaceAllString(strings.ToLower(id), "_"), "_."); capIDRE.MatchString(s) {
		example = s
	}
	return fmt.Errorf("capability %q: IDs must be lowercase <namespace>.<name>, e.g. %s", id, example)
}

// CheckPluginName reports whether name is a valid plugin name (the <name>
// in felhom-plugin-<name>_v<version>).
func CheckPluginName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("plugin name %q: must be lowercase letters, digits and '-', starting with a letter (it is the <name> in felhom-plugin-<name>_v<version>)", name)
	}
	return nil
}

// CheckVersion reports whether v is a semantic version without a leading "v".
func CheckVersion(v string) error {
	if strings.HasPrefix(v, "v") && semverRE.MatchString(v[1:]) {
		return fmt.Errorf("version %q: drop the leading \"v\" (%s)", v, v[1:])
	}
	if !semverRE.MatchString(v) {
		return fmt.Errorf("version %q: must be a semantic version such as 1.2.0", v)
	}
	return nil
}

// validateInfo checks what Serve can check before answering the
// handshake; every problem is reported at once.
func validateInfo(info Info) error {
	var errs []error
	if err := CheckPluginName(info.Name); err != nil {
		errs = append(errs, err)
	}
	if err := CheckVersion(info.Version); err != nil {
		errs = append(errs, err)
	}
	if info.MinCoreMinor > ProtocolMinor {
		errs = append(errs, fmt.Errorf("MinCoreMinor %d is newer than this SDK's protocol minor %d", info.MinCoreMinor, ProtocolMinor))
	}
	seen := map[string]bool{}
	for i := range info.Capabilities {
		c := &info.Capabilities[i]
		if err := CheckCapabilityID(c.ID); err != nil {
			errs = append(errs, err)
		}
		if seen[c.ID] {
			errs = append(errs, fmt.Errorf("capability %q is declared twice", c.ID))
		}
		seen[c.ID] = true
		if c.Class < Read || c.Class > Destructive {
			errs = append(errs, fmt.Errorf("capability %q: Class must be sdk.Read, sdk.Benign or sdk.Destructive", c.ID))
		}
		if c.SchemaVersion == 0 {
			errs = append(errs, fmt.Errorf("capability %q: SchemaVersion must be at least 1", c.ID))
		}
		if c.Handler == nil {
			errs = append(errs, fmt.Errorf("capability %q: Handler is nil", c.ID))
		}
		for _, s := range c.API {
			if err := apiscope.Validate(apiscope.Scope{Method: s.Method, Path: s.Path}); err != nil {
				errs = append(errs, fmt.Errorf("capability %q: %w", c.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}
