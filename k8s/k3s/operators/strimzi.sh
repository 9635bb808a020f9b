# shellcheck shell=bash
# Strimzi 1.2.0's images, built from the tag for the local k3s cluster: sourced by k8s/k3s/operators.sh after lib.sh,
# which calls build_strimzi. Local stand-ins, never pushed:
#   localhost/fraud-k3s/strimzi-operator:1.2.0             cluster operator, entity operator (topic and user
#                                                           operators) and kafka-init: one image, as upstream
#   localhost/fraud-k3s/strimzi-kafka:1.2.0-kafka-4.3.1     the Kafka nodes (KRaft brokers and controllers)
# Upstream builds them on UBI 9 with Java 21 from a Kafka release tarball; here Debian 12 (the project's minbase
# rootfs) has OpenJDK 17 only, and only the package registries are reachable. So:
#  - Maven compiles Strimzi for Java 17 (-Dmaven.compiler.release=17) after two one-line edits of the clone that
#    replace Java 21 APIs (strimzi_java17_patch); tests are not compiled, and their dependencies, some of which
#    Maven Central does not serve, are dropped from the clone's POMs (strimzi/drop-deps.py).
#  - Maven Central serves io.fabric8:openshift-client-api and openshift-model up to 7.7.0, not the 7.8.0 Strimzi
#    1.2.0 pins: every fabric8 artifact is built and shipped at 7.7.0, one minor release back.
#  - Kafka 4.3.1's jars come from Maven Central (strimzi/kafka-libs.pom.xml); its bin/*.sh, which are on no
#    registry, from the apache/kafka sources at the release tag, or at branch 3.9 where that tag cannot be had
#    (the local mirror here): scripts whose main class is not in Kafka 4.3.1's jars are left out.
#  - The third-party libraries of the tag's kafka-thirdparty-libs/4.3.x POM ship without those Maven Central does not
#    serve (OAuth 0.18.0, Cruise Control's metrics reporter, Strimzi's metrics reporter and quotas plugin): the
#    features that load them (OAuth listeners and Keycloak authorization, Cruise Control, the Strimzi metrics
#    reporter, the Strimzi quotas plugin) do not work with this image. Nor do the Kafka Exporter and Cruise Control
#    (a GitHub download, and jars not on Maven Central).

STRIMZI_KAFKA_VERSION=4.3.1      # the default of the tag's kafka-versions.yaml, = charts/fraud-detection kafka.version
STRIMZI_FABRIC8_VERSION=7.7.0    # the newest openshift-client-api Maven Central serves (the tag pins 7.8.0)
STRIMZI_YQ_MODULE=github.com/mikefarah/yq/v4@v4.54.3  # the Go yq 4 that Strimzi's build scripts call
STRIMZI_KAFKA_SCRIPTS_FALLBACK=3.9  # the newest apache/kafka branch of the local mirror
STRIMZI_OPERATOR_IMAGE=localhost/fraud-k3s/strimzi-operator:$STRIMZI_VERSION
STRIMZI_KAFKA_IMAGE=localhost/fraud-k3s/strimzi-kafka:$STRIMZI_VERSION-kafka-$STRIMZI_KAFKA_VERSION
# The modules whose -dist.zip the images hold, and what Maven builds for them (-am adds api, operator-common, ...).
STRIMZI_MODULES=kafka-agent,tracing-agent,config-model-generator,cluster-operator,topic-operator,user-operator,kafka-init
STRIMZI_POM_MODULES=(api crd-annotations crd-generator config-model config-model-generator certificate-issuer
  operator-common topic-operator cluster-operator user-operator kafka-init kafka-agent tracing-agent)
# Dependencies of kafka-thirdparty-libs/4.3.x that Maven Central does not serve (checked 2026-12).
STRIMZI_UNSERVED_THIRDPARTY=kafka-oauth-common,kafka-oauth-server,kafka-oauth-server-plain,kafka-oauth-client,kafka-oauth-keycloak-authorizer,cruise-control-metrics-reporter,server-metrics-reporter,kafka-quotas-plugin
STRIMZI_WORK=$CACHE/operators/strimzi
STRIMZI_CHART_DIR=$STRIMZI_WORK/chart/strimzi-kafka-operator

build_strimzi() {
  local src started
  started=$(date +%s)
  command -v podman >/dev/null || die "podman is missing: run bash k8s/k3s/cluster.sh build"
  command -v javac >/dev/null || die "no JDK: apt-get install openjdk-17-jdk-headless maven"
  command -v mvn >/dev/null || die "no Maven: apt-get install maven"
  command -v unzip >/dev/null || die "no unzip: apt-get install unzip"
  command -v python3 >/dev/null || die "no python3: apt-get install python3"
  command -v go >/dev/null || [[ -x $STRIMZI_WORK/bin/yq ]] || die "no Go toolchain (needed once, for yq): see k8s/k3s/build.sh"
  mkdir -p "$STRIMZI_WORK/logs" "$CACHE/stamps"
  src=$(operator_source strimzi/strimzi-kafka-operator "$STRIMZI_VERSION")
  strimzi_maven "$src"
  strimzi_operator_context "$src"
  strimzi_kafka_context "$src"
  write_podman_conf
  strimzi_debian_base
  strimzi_image "$STRIMZI_OPERATOR_IMAGE" "$STRIMZI_WORK/operator-image"
  strimzi_image "$STRIMZI_KAFKA_IMAGE" "$STRIMZI_WORK/kafka-image" \
    --build-arg "KAFKA_VERSION=$STRIMZI_KAFKA_VERSION"
  strimzi_chart "$src"
  log "strimzi: done in $(seconds_since "$started") s"
}

# The chart as Strimzi releases it: the tag's Chart.yaml holds placeholder versions (0.1.1, app 0.1.0) that its
# release packages over (`helm package --version --app-version`); a copy gets the release's, so that
# k8s/operators.sh sees the pinned version deployed.
strimzi_chart() {  # source-dir
  [[ -e $STRIMZI_CHART_DIR/.fraud-complete ]] && return 0
  rm -rf "$STRIMZI_CHART_DIR" && mkdir -p "$(dirname "$STRIMZI_CHART_DIR")"
  cp -a "$1/packaging/helm-charts/helm3/strimzi-kafka-operator" "$STRIMZI_CHART_DIR"
  sed -i -E "s/^version: .*/version: $STRIMZI_VERSION/; s/^appVersion: .*/appVersion: \"$STRIMZI_VERSION\"/" \
    "$STRIMZI_CHART_DIR/Chart.yaml"
  touch "$STRIMZI_CHART_DIR/.fraud-complete"
}

# The Maven arguments of every build, nested ones included (config-model-generator's script runs `mvn $MVN_ARGS`
# once per Kafka version): Maven Central only (the stand-in settings), a repository under .cache, no tests, no
# checkstyle, javadoc or sources jars, Java 17 bytecode, fabric8 at the served version.
strimzi_mvn_args() {  # sets STRIMZI_MVN
  local f=$STRIMZI_FABRIC8_VERSION
  STRIMZI_MVN=(-B -s "$HERE/bases/maven-settings.xml" "-Dmaven.repo.local=$STRIMZI_WORK/m2" -Dmaven.test.skip=true
    -Dmdep.analyze.skip=true -Dcheckstyle.skip=true -Dmaven.javadoc.skip=true -Dmaven.source.skip=true
    -Dmaven.compiler.release=17 "-Dfabric8.kubernetes-client.version=$f" "-Dfabric8.openshift-client.version=$f"
    "-Dfabric8.kubernetes-model.version=$f" "-Dfabric8.zjsonpatch.version=$f")
}

# Java 17 has neither List.getLast() nor virtual threads (both Java 21, upstream's release level): the one call of
# each in the code the images run gets its Java 17 equivalent. The roller's event publisher keeps a thread per task
# (daemon threads, like virtual ones). Fails loudly when the lines moved, so a new tag gets looked at.
strimzi_java17_patch() {
  local src=$1 certs roller
  certs=$src/operator-common/src/main/java/io/strimzi/operator/common/ca/CertificateUtils.java
  roller=$src/cluster-operator/src/main/java/io/strimzi/operator/cluster/operator/resource/KafkaRoller.java
  sed -i 's/certChain\.getLast()/certChain.get(certChain.size() - 1)/' "$certs"
  sed -i 's/Executors\.newVirtualThreadPerTaskExecutor()/Executors.newCachedThreadPool(runnable -> {\n        Thread thread = new Thread(runnable, "kafka-roller-events");\n        thread.setDaemon(true);\n        return thread;\n    })/' "$roller"
  if ! grep -q 'certChain.get(certChain.size() - 1)' "$certs" || ! grep -q '"kafka-roller-events"' "$roller"; then
    die "strimzi: the Java 17 edits no longer apply to $src: update strimzi_java17_patch in strimzi.sh"
  fi
  if grep -rqE '\.(getFirst|getLast|reversed)\(\)|newVirtualThreadPerTaskExecutor|Thread\.ofVirtual' \
    "$src"/{operator-common,cluster-operator,topic-operator,user-operator,kafka-init,kafka-agent,certificate-issuer,api}/src/main; then
    log "strimzi: warning: Java 21 API calls remain in the main sources; the Java 17 compilation will tell"
  fi
}

strimzi_maven() {
  local src=$1 stamp=$CACHE/stamps/strimzi-maven-$STRIMZI_VERSION want bin t log_file
  bin=$src/docker-images/artifacts/binaries
  strimzi_mvn_args
  # The stamp holds what the build was made with: another version or other arguments build again. Paths are
  # relative to the checkout, so another copy of it (skaffold's e2e test works in one) reuses the build.
  want="$STRIMZI_VERSION ${STRIMZI_MVN[*]//"$ROOT"/.}"
  if [[ $(cat "$stamp" 2>/dev/null) == "$want" && -s $bin/cluster-operator-$STRIMZI_VERSION-dist.zip \
    && -d $STRIMZI_WORK/thirdparty ]]; then
    return 0
  fi
  # Strimzi's scripts read kafka-versions.yaml with the Go yq 4 (Debian's yq is another program).
  if [[ ! -x $STRIMZI_WORK/bin/yq ]]; then
    log "strimzi: go install $STRIMZI_YQ_MODULE"
    GOBIN=$STRIMZI_WORK/bin CGO_ENABLED=0 nice_run go install "$STRIMZI_YQ_MODULE" || die "go install $STRIMZI_YQ_MODULE failed"
  fi
  strimzi_java17_patch "$src"
  (cd "$src" && python3 "$HERE/operators/strimzi/drop-deps.py" test pom.xml "${STRIMZI_POM_MODULES[@]/%//pom.xml}") >&2
  t=$(date +%s)
  log_file=$STRIMZI_WORK/logs/maven.log
  log "strimzi: Maven build of $STRIMZI_MODULES (log: $log_file)"
  # MVN_ARGS: the nested builds' arguments (a word list, as Strimzi's scripts split it). clean: a build with other
  # arguments must not keep the classes of the last one.
  (cd "$src" && export PATH=$STRIMZI_WORK/bin:$PATH MVN_ARGS="${STRIMZI_MVN[*]}" \
    && nice_run mvn "${STRIMZI_MVN[@]}" clean install -pl "$STRIMZI_MODULES" -am) >"$log_file" 2>&1 \
    || die "strimzi: the Maven build failed: see $log_file"
  log "strimzi: Maven build: $(seconds_since "$t") s"
  # The tag's third-party libraries of the Kafka image (docker-images/artifacts/build.sh does the same).
  (cd "$src" && python3 "$HERE/operators/strimzi/drop-deps.py" artifacts "$STRIMZI_UNSERVED_THIRDPARTY" \
    docker-images/artifacts/kafka-thirdparty-libs/4.3.x/pom.xml) >&2
  rm -rf "$STRIMZI_WORK/thirdparty"
  nice_run mvn "${STRIMZI_MVN[@]}" dependency:copy-dependencies -f "$src/docker-images/artifacts/kafka-thirdparty-libs/4.3.x/pom.xml" \
    "-DoutputDirectory=$STRIMZI_WORK/thirdparty" >"$STRIMZI_WORK/logs/thirdparty.log" 2>&1 \
    || die "strimzi: resolving kafka-thirdparty-libs/4.3.x failed: see $STRIMZI_WORK/logs/thirdparty.log"
  echo "$want" >"$stamp"
}

# The host's CA files, for apt in the image builds (outgoing TLS may be intercepted here).
strimzi_ca() {
  rm -rf "$1/ca" && mkdir -p "$1/ca"
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$1/ca/" \; 2>/dev/null || :
}

# docker-images/operator as its Makefile prepares it: scripts/ (launch_java.sh) and tmp/ with the four -dist.zip
# files unzipped into it (their bin/*_run.sh and lib/*.jar).
strimzi_operator_context() {
  local src=$1 ctx=$STRIMZI_WORK/operator-image zip stamp=$CACHE/stamps/strimzi-maven-$STRIMZI_VERSION
  if [[ ! -e $ctx/.complete || $ctx/.complete -ot $stamp ]]; then
    rm -rf "$ctx" && mkdir -p "$ctx/tmp"
    cp -a "$src/docker-images/operator/scripts" "$ctx/scripts"
    for zip in cluster-operator topic-operator user-operator kafka-init; do
      unzip -qo "$src/docker-images/artifacts/binaries/$zip-$STRIMZI_VERSION-dist.zip" -d "$ctx/tmp"
    done
    touch "$ctx/.complete"
  fi
  cp "$HERE/operators/strimzi/operator.Containerfile" "$ctx/Containerfile"
  strimzi_ca "$ctx"
}

# /opt/kafka as docker-images/kafka-based/kafka lays it out, assembled in the build context.
strimzi_kafka_context() {
  local src=$1 ctx=$STRIMZI_WORK/kafka-image stamp=$CACHE/stamps/strimzi-maven-$STRIMZI_VERSION home libs jmx_version pom
  home=$ctx/opt-kafka libs=$ctx/opt-kafka/libs
  # .complete holds the POM's checksum: a changed POM assembles again, a fresh checkout of the same one does not.
  pom=$(sha256sum <"$HERE/operators/strimzi/kafka-libs.pom.xml")
  if [[ ! -e $ctx/.complete || $ctx/.complete -ot $stamp || $(cat "$ctx/.complete") != "$pom" ]]; then
    rm -rf "$ctx" && mkdir -p "$libs" "$home/plugins" "$ctx/jmx-exporter" "$STRIMZI_WORK/kafka-libs"
    log "strimzi: Kafka $STRIMZI_KAFKA_VERSION jars from Maven Central"
    # The POM is copied out of the project's tree: Maven may write target/ beside it.
    cp "$HERE/operators/strimzi/kafka-libs.pom.xml" "$STRIMZI_WORK/kafka-libs/pom.xml"
    strimzi_mvn_args
    nice_run mvn "${STRIMZI_MVN[@]}" -f "$STRIMZI_WORK/kafka-libs/pom.xml" dependency:copy-dependencies \
      "-Dkafka.version=$STRIMZI_KAFKA_VERSION" "-DoutputDirectory=$libs" >"$STRIMZI_WORK/logs/kafka-libs.log" 2>&1 \
      || die "strimzi: resolving Kafka $STRIMZI_KAFKA_VERSION's jars failed: see $STRIMZI_WORK/logs/kafka-libs.log"
    # Upstream's Makefile: the agents' own jars (their dependencies are Kafka's and the third-party ones).
    unzip -qoj "$src/docker-images/artifacts/binaries/kafka-agent-$STRIMZI_VERSION-dist.zip" \
      "lib/io.strimzi.kafka-agent-$STRIMZI_VERSION.jar" -d "$ctx"
    mv "$ctx/io.strimzi.kafka-agent-$STRIMZI_VERSION.jar" "$libs/kafka-agent-$STRIMZI_VERSION.jar"
    unzip -qoj "$src/docker-images/artifacts/binaries/tracing-agent-$STRIMZI_VERSION-dist.zip" \
      "lib/io.strimzi.tracing-agent-$STRIMZI_VERSION.jar" -d "$ctx"
    mv "$ctx/io.strimzi.tracing-agent-$STRIMZI_VERSION.jar" "$libs/tracing-agent-$STRIMZI_VERSION.jar"
    cp "$STRIMZI_WORK"/thirdparty/*.jar "$libs/"
    strimzi_kafka_collisions "$libs"
    strimzi_kafka_scripts "$home"
    # Strimzi's scripts at the top of KAFKA_HOME (Dockerfile: COPY ./scripts/ $KAFKA_HOME).
    cp -a "$src/docker-images/kafka-based/kafka/scripts/." "$home/"
    # The JMX exporter agent at the version the tag's Dockerfile downloads, where Maven Central serves it (here it
    # serves up to 1.0.1, not 1.6.0): only metricsConfig type jmxPrometheusExporter needs it.
    jmx_version=$(sed -n 's/^ENV JMX_EXPORTER_VERSION=//p' "$src/docker-images/kafka-based/kafka/Dockerfile")
    if ! nice_run mvn "${STRIMZI_MVN[@]}" dependency:copy \
      "-Dartifact=io.prometheus.jmx:jmx_prometheus_javaagent:$jmx_version" "-DoutputDirectory=$ctx/jmx-exporter" \
      >"$STRIMZI_WORK/logs/jmx-exporter.log" 2>&1; then
      log "strimzi: warning: jmx_prometheus_javaagent $jmx_version is not on Maven Central: the Kafka image has no" \
        "JMX exporter (see $STRIMZI_WORK/logs/jmx-exporter.log)"
    fi
    echo "$pom" >"$ctx/.complete"
  fi
  cp "$HERE/operators/strimzi/kafka.Containerfile" "$ctx/Containerfile"
  strimzi_ca "$ctx"
}

# Two versions of one library in libs/ (Kafka's and a third-party one's) would both be on the classpath; upstream's
# build only reports such collisions, and so does this.
strimzi_kafka_collisions() {
  local dups
  dups=$(find "$1" -name '*.jar' -printf '%f\n' | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//' | sort | uniq -d)
  [[ -z $dups ]] || log "strimzi: warning: more than one version in libs/ of: $(echo "$dups" | tr '\n' ' ')"
}

# Kafka's bin/*.sh (they put every jar of ../libs on the classpath) from the apache/kafka sources: the release tag
# where it can be cloned, else the fallback branch. A script whose main class is not in the 4.3.1 jars (ZooKeeper's,
# tools moved or removed since) is left out; Strimzi's pods run kafka-server-start.sh and kafka-storage.sh.
strimzi_kafka_scripts() {
  local home=$1 kafka_src ref script class classes kept=() dropped=()
  ref=$STRIMZI_KAFKA_VERSION
  if ! kafka_src=$( (operator_source apache/kafka "$ref") 2>/dev/null); then
    ref=$STRIMZI_KAFKA_SCRIPTS_FALLBACK
    kafka_src=$(operator_source apache/kafka "$ref")
  fi
  # (unzip fails on a jar without classes, such as Guava's empty listenablefuture)
  classes=$(for jar in "$home"/libs/*.jar; do unzip -Z1 "$jar" '*.class' 2>/dev/null || :; done | sed 's/\.class$//; s#/#.#g')
  mkdir -p "$home/bin"
  for script in "$kafka_src"/bin/*.sh; do
    class=$(grep -oE 'kafka-run-class\.sh( +\$[A-Z_]+)* +[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.[A-Z][A-Za-z0-9_]*' \
      "$script" | awk '{print $NF}' | tail -1 || :)
    if [[ $(basename "$script") == zookeeper-* ]] || { [[ -n $class ]] && ! grep -qxF "$class" <<<"$classes"; } \
      || { [[ -z $class ]] && grep -q 'kafka-run-class\.sh' "$script" && [[ $(basename "$script") != kafka-run-class.sh ]]; }; then
      dropped+=("$(basename "$script")")
      continue
    fi
    install -m 0755 "$script" "$home/bin/"
    kept+=("$(basename "$script")")
  done
  [[ -x $home/bin/kafka-server-start.sh && -x $home/bin/kafka-storage.sh && -x $home/bin/kafka-run-class.sh ]] \
    || die "strimzi: apache/kafka $ref has no usable kafka-server-start.sh, kafka-storage.sh or kafka-run-class.sh"
  # The distribution's logging configuration of the tools, where the scripts' release has a Log4j 2 one.
  if compgen -G "$kafka_src/config/*log4j2*" >/dev/null; then
    mkdir -p "$home/config" && cp "$kafka_src"/config/*log4j2* "$home/config/"
  fi
  for script in LICENSE NOTICE; do
    [[ -e $kafka_src/$script-binary ]] && cp "$kafka_src/$script-binary" "$home/$script"
  done
  log "strimzi: Kafka scripts from apache/kafka $ref: ${#kept[@]} kept, left out: ${dropped[*]:-none}"
  echo "$ref" >"$home/bin/.scripts-ref"
}

# The Debian 12 minbase image every stand-in starts from (images.sh imports it the same way).
strimzi_debian_base() {
  local image=localhost/fraud-k3s/debian:$DEBIAN_SUITE-minbase
  podman image exists "$image" && return 0
  [[ -s $CACHE/rootfs/$DEBIAN_SUITE-minbase.tar ]] || die "no rootfs: run bash k8s/k3s/cluster.sh build"
  podman import -q "$CACHE/rootfs/$DEBIAN_SUITE-minbase.tar" "$image" >/dev/null
}

# Builds an image unless one of that name was built from the same context: the context's digest is a label.
strimzi_image() {  # image context-dir [podman build args]
  local image=$1 ctx=$2 digest t
  shift 2
  digest=$(cd "$ctx" && find . -type f ! -name .complete -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
  digest=${digest%% *}
  if podman image exists "$image" \
    && [[ $(podman image inspect --format '{{index .Labels "fraud-k3s.context"}}' "$image") == "$digest" ]]; then
    log "strimzi: $image is up to date"
    return 0
  fi
  t=$(date +%s)
  nice_run podman build -q --network=host --build-arg "DEBIAN_IMAGE=localhost/fraud-k3s/debian:$DEBIAN_SUITE-minbase" \
    --build-arg "strimzi_version=$STRIMZI_VERSION" "$@" --label "fraud-k3s.context=$digest" -t "$image" "$ctx" \
    >/dev/null || die "strimzi: podman build of $image failed"
  log "strimzi: built $image in $(seconds_since "$t") s ($(podman image inspect --format '{{.Size}}' "$image" \
    | awk '{printf "%.0f MB", $1 / 1e6}'))"
}
