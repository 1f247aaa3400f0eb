package pvestorage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Service performs storage operations on one node through [API].
type Service struct {
	API  API
	Node string
}

// ListFilter narrows [Service.List].
type ListFilter struct {
	// Content keeps storages that allow this content type.
	Content string
	// EnabledOnly drops disabled storages.
	EnabledOnly bool
	// Type keeps storages of this type (filtered here: the node list has no
	// type parameter).
	Type string
}

// ContentFilter narrows [Service.Content].
type ContentFilter struct {
	Content string
	VMID    int64
}

func (s *Service) nodePath() string { return "/nodes/" + url.PathEscape(s.Node) + "/storage" }

// List returns the storages configured for this node with their status
// (GET /nodes/{node}/storage), sorted by ID.
func (s *Service) List(ctx context.Context, f ListFilter) ([]Storage, error) {
	q := url.Values{}
	if f.Content != "" {
		if err := ValidateContentType("content", f.Content); err != nil {
			return nil, err
		}
		q.Set("content", f.Content)
	}
	if f.EnabledOnly {
		q.Set("enabled", "1")
	}
	if f.Type != "" && !contains(Types, f.Type) {
		return nil, invalid("type", "unknown storage type %q (want one of %s)", clip(f.Type), strings.Join(Types, ", "))
	}
	data, err := s.API.Call(ctx, "GET", s.nodePath(), q)
	if err != nil {
		return nil, classify(err, "list storages of node "+s.Node)
	}
	all, err := DecodeStorages(data)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "list storages", Err: err}
	}
	if f.Type == "" {
		return all, nil
	}
	out := all[:0]
	for _, st := range all {
		if st.Type == f.Type {
			out = append(out, st)
		}
	}
	return out, nil
}

// Status returns one storage's status on this node
// (GET /nodes/{node}/storage/{storage}/status).
func (s *Service) Status(ctx context.Context, id string) (Storage, error) {
	if err := ValidateID("id", id); err != nil {
		return Storage{}, err
	}
	data, err := s.API.Call(ctx, "GET", s.nodePath()+"/"+id+"/status", nil)
	if err != nil {
		return Storage{}, classify(err, fmt.Sprintf("status of storage %s", id))
	}
	st, err := DecodeStatus(id, data)
	if err != nil {
		return Storage{}, &Error{Code: CodeInternal, Message: "storage status", Err: err}
	}
	return st, nil
}

// Content lists the volumes on a storage
// (GET /nodes/{node}/storage/{storage}/content), sorted by volume ID.
func (s *Service) Content(ctx context.Context, id string, f ContentFilter) ([]ContentItem, error) {
	if err := ValidateID("id", id); err != nil {
		return nil, err
	}
	q := url.Values{}
	if f.Content != "" {
		if err := ValidateContentType("content", f.Content); err != nil {
			return nil, err
		}
		q.Set("content", f.Content)
	}
	if f.VMID != 0 {
		if err := ValidateVMID("vmid", f.VMID); err != nil {
			return nil, err
		}
		q.Set("vmid", strconv.FormatInt(f.VMID, 10))
	}
	data, err := s.API.Call(ctx, "GET", s.nodePath()+"/"+id+"/content", q)
	if err != nil {
		return nil, classify(err, fmt.Sprintf("list content of storage %s", id))
	}
	items, err := DecodeContent(data)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "storage content", Err: err}
	}
	return items, nil
}

// Config returns a storage's cluster configuration and digest
// (GET /storage/{storage}).
func (s *Service) Config(ctx context.Context, id string) (Config, error) {
	if err := ValidateID("id", id); err != nil {
		return Config{}, err
	}
	data, err := s.API.Call(ctx, "GET", "/storage/"+id, nil)
	if err != nil {
		return Config{}, classify(err, fmt.Sprintf("read config of storage %s", id))
	}
	c, err := DecodeConfig(data)
	if err != nil {
		return Config{}, &Error{Code: CodeInternal, Message: "storage config", Err: err}
	}
	return c, nil
}

// Define creates a storage (POST /storage) or, with update, changes an
// existing one (PUT /storage/{storage}) under a digest, so that a
// concurrent change is refused rather than overwritten.
//
// Create is idempotent: when the storage already exists with the same
// type, content, nodes, disable flag and (comparable) options, Define
// succeeds without writing; otherwise it is a conflict.
//
// Update merges: options, content and nodes given are set, those not
// given are left as they are; Disable is always applied. Options fixed at
// creation (path, export, ...) may be repeated with their current value but
// not changed. digest, when given, must match the current configuration's.
// An update that changes nothing writes nothing.
func (s *Service) Define(ctx context.Context, spec Spec, update bool, digest string) (Storage, error) {
	if err := ValidateSpec(spec, update); err != nil {
		return Storage{}, err
	}
	if update {
		if err := s.update(ctx, spec, digest); err != nil {
			return Storage{}, err
		}
	} else {
		if digest != "" {
			return Storage{}, invalid("digest", "a digest only applies to an update")
		}
		if err := s.create(ctx, spec); err != nil {
			return Storage{}, err
		}
	}
	return s.describe(ctx, spec.ID)
}

func (s *Service) create(ctx context.Context, spec Spec) error {
	p := specParams(spec)
	p["storage"], p["type"] = spec.ID, spec.Type
	if spec.Disable {
		p["disable"] = "1"
	}
	_, err := s.API.Call(ctx, "POST", "/storage", values(p))
	if err == nil {
		return nil
	}
	err = classify(err, "create storage "+spec.ID)
	if CodeOf(err) != CodeConflict {
		return err
	}
	cur, cerr := s.Config(ctx, spec.ID)
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	if diff := createDiff(cur, spec); len(diff) > 0 {
		return &Error{Code: CodeConflict, Field: "id", Message: fmt.Sprintf(
			"storage %s already exists with different settings (%s); define it with update to change it",
			spec.ID, strings.Join(diff, ", "))}
	}
	return nil // the same storage is already there: a retried create
}

// createDiff lists the properties in which an existing storage differs from
// a spec. Secret options cannot be compared (Proxmox does not return them).
func createDiff(cur Config, spec Spec) []string {
	var diff []string
	if cur.Type != spec.Type {
		diff = append(diff, fmt.Sprintf("type is %s", cur.Type))
	}
	if len(spec.Content) > 0 && !equalSets(cur.Content, spec.Content) {
		diff = append(diff, "content is "+strings.Join(cur.Content, ","))
	}
	if !equalSets(cur.Nodes, spec.Nodes) {
		diff = append(diff, "nodes differ")
	}
	if cur.Disable != spec.Disable {
		diff = append(diff, "disable differs")
	}
	for _, k := range sortedKeys(spec.Options) {
		if IsSecretOption(k) {
			continue
		}
		if cur.Options[k] != spec.Options[k] {
			diff = append(diff, "options."+k+" differs")
		}
	}
	return diff
}

func (s *Service) update(ctx context.Context, spec Spec, digest string) error {
	cur, err := s.Config(ctx, spec.ID)
	if err != nil {
		if CodeOf(err) == CodeNotFound {
			return &Error{Code: CodeNotFound, Field: "id", Message: fmt.Sprintf(
				"storage %s does not exist; define it without update to create it", spec.ID), Err: err}
		}
		return err
	}
	if spec.Type != "" && spec.Type != cur.Type {
		return invalid("type", "storage %s is of type %s; the type cannot change", spec.ID, cur.Type)
	}
	if digest != "" && digest != cur.Digest {
		return &Error{Code: CodeConflict, Field: "digest", Message: fmt.Sprintf(
			"storage %s changed since digest %s was read (now %s); read it again", spec.ID, clip(digest), cur.Digest)}
	}
	p := map[string]string{}
	for _, k := range sortedKeys(spec.Options) {
		v := spec.Options[k]
		switch {
		case fixedOptions[k]:
			if cur.Options[k] != v {
				return invalid("options."+k, "fixed at creation: is %q, cannot become %q", clip(cur.Options[k]), clip(v))
			}
		case IsSecretOption(k) || cur.Options[k] != v:
			p[k] = v
		}
	}
	if len(spec.Content) > 0 && !equalSets(cur.Content, spec.Content) {
		p["content"] = strings.Join(normList(spec.Content), ",")
	}
	if len(spec.Nodes) > 0 && !equalSets(cur.Nodes, spec.Nodes) {
		p["nodes"] = strings.Join(normList(spec.Nodes), ",")
	}
	if spec.Disable != cur.Disable {
		p["disable"] = boolParam(spec.Disable)
	}
	if len(p) == 0 {
		return nil
	}
	p["digest"] = cur.Digest
	if _, err := s.API.Call(ctx, "PUT", "/storage/"+spec.ID, values(p)); err != nil {
		return classify(err, "update storage "+spec.ID)
	}
	return nil
}

// describe returns a storage's status on this node, or, when it has none
// here (disabled, or limited to other nodes), a summary of its config.
func (s *Service) describe(ctx context.Context, id string) (Storage, error) {
	st, err := s.Status(ctx, id)
	if err == nil {
		return st, nil
	}
	if ctx.Err() != nil {
		return Storage{}, err
	}
	cur, cerr := s.Config(ctx, id)
	if cerr != nil {
		return Storage{}, errors.Join(err, cerr)
	}
	return Storage{ID: cur.ID, Type: cur.Type, Content: cur.Content, Enabled: !cur.Disable,
		Shared: cur.Options["shared"] == "1"}, nil
}

// Remove deletes a storage from the cluster configuration
// (DELETE /storage/{storage}). The data on it is left alone.
func (s *Service) Remove(ctx context.Context, id string) error {
	if err := ValidateID("id", id); err != nil {
		return err
	}
	if _, err := s.API.Call(ctx, "DELETE", "/storage/"+id, nil); err != nil {
		return classify(err, "remove storage "+id)
	}
	return nil
}

func values(p map[string]string) url.Values {
	v := make(url.Values, len(p))
	for k, s := range p {
		v.Set(k, s)
	}
	return v
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
