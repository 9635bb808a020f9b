// Project stand-in for Grafana's apimachinery module: see ../README.md.
module github.com/grafana/grafana/pkg/apimachinery

go 1.24
