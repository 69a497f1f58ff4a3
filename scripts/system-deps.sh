#!/usr/bin/env bash
# System packages the project needs beyond Python: a JDK (Kafka runs on the JVM), Maven
# (resolves Kafka's jars from Maven Central) and Debian's Chromium (the portal tests drive it
# with Playwright; Playwright's own browser download cannot work offline). Installs only what
# is missing, with apt. And lz4, for a test that reads Kafka's compressed log segments.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The OTP secrecy test opens the relay's lz4-compressed batches in Kafka's log segments.
command -v lz4 >/dev/null 2>&1 || missing+=(lz4)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ledgerflow: please install: ${missing[*]} (a JDK 17+ and Maven)" >&2
    exit 1
  fi
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
