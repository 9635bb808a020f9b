// Project stand-in for Grafana's folder API module: see ../README.md.
module github.com/grafana/grafana/apps/folder

go 1.24
