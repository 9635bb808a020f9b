"""Drop <dependency> blocks from POMs of the Strimzi clone under .cache (never from the project's tree). Idempotent;
prints what it removed.

  drop-deps.py test ROOT_POM MODULE_POM...      the modules' test dependencies
  drop-deps.py artifacts ID,ID,... POM...       the dependencies with one of these artifactIds

`test`: Maven resolves a module's test dependencies even with -Dmaven.test.skip=true, and some of Strimzi 1.2.0's are
not on Maven Central (io.strimzi:strimzi-test-container:0.116.0, fault-injection-source-connector) or are test-jars
a test-skipping build does not make. A block goes when it says <scope>test</scope> or <type>test-jar</type>, or when
the root POM's dependencyManagement gives that group, artifact and type the test scope."""
import re
import sys
from pathlib import Path

DEPENDENCY = re.compile(r"[ \t]*<dependency>(?:(?!</dependency>).)*</dependency>[ \t]*\n?", re.S)


def tag(block, name, default=None):
    match = re.search(rf"<{name}>\s*([^<]*?)\s*</{name}>", block)
    return match.group(1) if match else default


def key(block):
    return tag(block, "groupId"), tag(block, "artifactId"), tag(block, "type", "jar"), tag(block, "classifier", "")


def drop(pom, unwanted):
    text = pom.read_text()
    # Only the project's own <dependencies>: not a plugin's, not the dependencyManagement section.
    own = re.sub(r"<build>.*?</build>|<dependencyManagement>.*?</dependencyManagement>", "", text, flags=re.S)
    removed = []
    for block in DEPENDENCY.findall(own):
        if unwanted(block):
            text = text.replace(block, "", 1)
            removed.append(f"{tag(block, 'groupId')}:{tag(block, 'artifactId')}")
    if removed:
        pom.write_text(text)
        print(f"{pom}: dropped {', '.join(removed)}")


def main(mode, arg, *poms):
    if mode == "test":
        managed = re.search(r"<dependencyManagement>.*?</dependencyManagement>", Path(arg).read_text(), re.S).group(0)
        test_managed = {key(b) for b in DEPENDENCY.findall(managed) if tag(b, "scope") == "test"}

        def unwanted(block):
            scope = tag(block, "scope")
            return scope == "test" or tag(block, "type") == "test-jar" or (scope is None and key(block) in test_managed)
    elif mode == "artifacts":
        ids = set(arg.split(","))

        def unwanted(block):
            return tag(block, "artifactId") in ids
    else:
        sys.exit(f"unknown mode {mode}: test or artifacts")
    for pom in poms:
        drop(Path(pom), unwanted)


if __name__ == "__main__":
    main(*sys.argv[1:])
