// Package v1 describes Grafana's folder.grafana.app/v1 Folder as the grafana-operator writes it (see
// ../../../../../README.md): the type's wire shape, its group, version, kind and resource.
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of Folder.
var GroupVersion = schema.GroupVersion{Group: "folder.grafana.app", Version: "v1"}

// FolderSpec is what a folder holds besides its metadata.
type FolderSpec struct {
	Title       string  `json:"title"`
	Description *string `json:"description,omitempty"`
}

// Folder is a Grafana folder object; its name is the folder's UID.
type Folder struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              FolderSpec `json:"spec"`
}

// NewFolder returns an empty Folder.
func NewFolder() *Folder { return &Folder{} }

// DeepCopyObject makes Folder a runtime.Object.
func (f *Folder) DeepCopyObject() runtime.Object {
	if f == nil {
		return nil
	}
	out := &Folder{TypeMeta: f.TypeMeta, Spec: f.Spec}
	f.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if f.Spec.Description != nil {
		d := *f.Spec.Description
		out.Spec.Description = &d
	}
	return out
}

// Kind names Folder's kind and resource.
type Kind struct{}

// FolderKind returns Folder's kind.
func FolderKind() Kind { return Kind{} }

// Kind is the object kind, as in an object's `kind` field.
func (Kind) Kind() string { return "Folder" }

// GroupVersionResource is where the API serves folders.
func (Kind) GroupVersionResource() schema.GroupVersionResource {
	return GroupVersion.WithResource("folders")
}
