package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"

	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// Kinds gives, for "apiVersion kind" ("apps/v1 Deployment"), a new value
// of the Go type its manifests must decode into.
type Kinds map[string]func() any

// Kustomization is the part of kustomize's Kustomization the manifests
// use; an unknown field fails like any other.
type Kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// Object is one document of a manifest file, decoded.
type Object struct {
	File       string
	Doc        int // 0-based index of the document in File
	APIVersion string
	Kind       string
	Value      any // a pointer to the type Kinds gave
}

// DecodeStrict decodes one YAML document into v as the API server's
// strict field validation does: an unknown field, a field whose case is
// wrong ("runAsNonroot") or one given twice is an error. (encoding/json
// alone would accept the last two silently, as would kubectl before the
// server rejects or drops them.)
func DecodeStrict(doc []byte, v any) error {
	j, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$\n?`)

// Documents splits a YAML stream at its "---" lines, dropping documents
// that hold only comments.
func Documents(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(data), -1) {
		var probe any
		if err := sigsyaml.Unmarshal([]byte(d), &probe); err == nil && probe == nil {
			continue
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

// DecodeManifests decodes every document of data strictly into the type
// kinds gives for its apiVersion and kind; a kind it does not know is an
// error, so a manifest no test looks at cannot slip in.
func DecodeManifests(file string, data []byte, kinds Kinds) ([]Object, error) {
	var objs []Object
	for i, doc := range Documents(data) {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		mk, ok := kinds[tm.APIVersion+" "+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("%s: document %d: no Go type for apiVersion %q kind %q", file, i, tm.APIVersion, tm.Kind)
		}
		v := mk()
		if err := DecodeStrict(doc, v); err != nil {
			return nil, fmt.Errorf("%s: document %d (%s): %w", file, i, tm.Kind, err)
		}
		objs = append(objs, Object{File: file, Doc: i, APIVersion: tm.APIVersion, Kind: tm.Kind, Value: v})
	}
	return objs, nil
}

// DecodeManifestFile is DecodeManifests of a file.
func DecodeManifestFile(file string, kinds Kinds) ([]Object, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return DecodeManifests(file, bytes.TrimPrefix(data, []byte("\ufeff")), kinds)
}
