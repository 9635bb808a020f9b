// Package utils holds the one Grafana API annotation the grafana-operator sets (see ../../README.md).
package utils

// AnnoKeyFolder names an object's parent folder in Grafana's Kubernetes-style APIs.
const AnnoKeyFolder = "grafana.app/folder"
