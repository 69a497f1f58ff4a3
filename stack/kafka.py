"""Kafka for the embedded stack: one KRaft node (broker + controller) run from Maven jars.

The Kafka tarball lives on the Apache mirrors, which this project's machines cannot reach,
but Maven Central carries every jar the broker needs. So `infra/kafka/pom.xml` lists them,
`ensure_kafka_libs` has Maven copy them into a cache folder once, and the broker runs as
`java -cp 'libs/*' kafka.Kafka server.properties` - what `kafka-server-start.sh` does, minus
the shell scripts, which are not on Maven Central.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from stack.service import Service, StackError, port_open, tail

POM_PATH = Path(__file__).resolve().parent.parent / "infra" / "kafka" / "pom.xml"

# The broker's entry point and the storage formatter (`kafka-storage.sh`), both in
# kafka_2.13-<version>.jar.
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"

# A fixed cluster id: the data dir is formatted once and never shared with another cluster,
# so a stored random one would buy nothing. It is base64url("LedgerflowKafka1"), a valid
# 16-byte Kafka Uuid.
CLUSTER_ID = "TGVkZ2VyZmxvd0thZmthMQ"
NODE_ID = 1

MIN_JAVA = 17
_MARKER = ".pom-sha256"

# G1 flags as in kafka-run-class.sh; the heap is smaller than the script's 1 GiB fixed heap
# because the dev stack shares a 2-core machine with PostgreSQL, Temporal and the workers.
BROKER_JVM_OPTS = [
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
# The formatter is a one-shot tool: C1 only and a small heap make it start faster.
TOOL_JVM_OPTS = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]

# Everything to stdout (the Service sends stdout to its log file), Kafka at INFO and its
# chattiest loggers at WARN. A .properties file rather than Kafka's own log4j2.yaml because
# log4j-core reads it without any extra jar.
LOG4J2_PROPERTIES = """\
# Written by stack/kafka.py; rewritten on every start.
status = warn
# Kafka's own shutdown hook logs the controlled shutdown; log4j's hook would stop logging
# halfway through it.
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.target = SYSTEM_OUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


@functools.cache
def ensure_java() -> str:
    """Return the path of `java` (JDK 17+).

    Raises:
        StackError: java is missing, does not run, or is older than 17.
    """
    hint = "install a JDK 17+ (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    java: str | None = None
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        java = str(Path(java_home) / "bin" / "java")
    else:
        java = shutil.which("java")
    if java is None:
        raise StackError(f"java not found: {hint}")
    try:
        # `java -version` writes to stderr, e.g. `openjdk version "17.0.15" 2025-04-15`
        # or `java version "1.8.0_392"` for the old scheme.
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{java} -version failed ({exc}): {hint}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise StackError(f"cannot tell the version of {java}: {hint}")
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise StackError(f"{java} is Java {major}, Kafka needs {MIN_JAVA}+: {hint}")
    return java


def ensure_kafka_libs(cache_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Resolve the Kafka jars with Maven into cache_dir/libs, once per pom content.

    Returns:
        The libs directory (use it as `-cp 'libs/*'`).

    Raises:
        StackError: Maven is missing or the resolution failed.
    """
    libs = cache_dir / "libs"
    pom_sha = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    marker = libs / _MARKER
    # The marker is written last, so its presence with the right hash means a complete set
    # of jars for exactly this pom; editing the pom (say, a Kafka upgrade) resolves again.
    if marker.is_file() and marker.read_text().strip() == pom_sha and any(libs.glob("*.jar")):
        return libs

    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn not found: install Maven (apt-get install maven) to fetch Kafka")
    cache_dir.mkdir(parents=True, exist_ok=True)
    log_path = cache_dir / "mvn-kafka.log"
    # Resolve into a fresh folder and swap it in only on success, so an interrupted or
    # failed run never leaves a half-filled libs/ (or a mix of two Kafka versions) behind.
    staging = cache_dir / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress("resolving the Kafka jars with Maven (once per pom; seconds with a warm ~/.m2)")
    argv = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM_PATH),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    with open(log_path, "wb") as log:
        try:
            result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            raise StackError(f"could not run mvn ({exc}): install Maven (apt-get install maven)") from exc
    if result.returncode != 0 or not any(staging.glob("*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(
            f"mvn could not fetch the Kafka jars (exit {result.returncode}); see {log_path} "
            "and check that Maven Central is reachable"
        )
    (staging / _MARKER).write_text(pom_sha + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    try:
        staging.rename(libs)
    except OSError as exc:
        # Another process (say, a second test session) swapped its own copy in first;
        # if that one is for this pom, it is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
        if not (marker.is_file() and marker.read_text().strip() == pom_sha):
            raise StackError(f"could not move the Kafka jars into {libs} ({exc}); delete it and retry") from exc
    return libs


def server_properties(
    *,
    home: Path,
    host: str,
    port: int,
    controller_port: int,
    partitions: int,
    node_id: int = NODE_ID,
    voters: str | None = None,
    overrides: dict[str, str] | None = None,
) -> str:
    """The server.properties of a single combined KRaft node (or, with `voters` and `overrides`,
    one node of the cluster profile's three: stack/kafka_cluster.py)."""
    # A static one-voter quorum (controller.quorum.voters) rather than Kafka 4's default
    # dynamic one (controller.quorum.bootstrap.servers + `format --standalone`): one node
    # never adds controllers, and with a static quorum the voter set lives only in this
    # file, read afresh on every start (so new ports on an old data dir just work), and
    # the format needs no quorum flags.
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(home / "data"),
        "num.partitions": str(partitions),
        # Topics are created on purpose by the stack; a typo must fail, not invent a topic.
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        # One broker: every internal topic must fit on it, or consumer groups, transactions
        # and share groups wait forever for replicas that never come.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # The default 50 partitions per internal topic only slow a dev broker down.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.num.partitions": "10",
        # Consumers join at once instead of waiting 3 s for more members (tests feel it).
        "group.initial.rebalance.delay.ms": "0",
        # After a SIGKILL the restarted broker cannot register until the controller expires
        # the dead incarnation's session (DUPLICATE_BROKER_REGISTRATION): 9 s by default,
        # the bulk of a restart-after-kill. Shorter, still well above GC pauses of a 1 GiB heap.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "4000",
        # Small-machine sizing: 2 cores, shared with the rest of the stack.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        "log.segment.bytes": str(128 * 1024 * 1024),
        "log.retention.hours": "168",
        "log.retention.check.interval.ms": "300000",
    }
    lines.update(overrides or {})
    body = "\n".join(f"{key}={value}" for key, value in lines.items())
    return f"# Written by stack/kafka.py; rewritten on every start.\n{body}\n"


def kafka_service(
    *,
    home: Path,
    libs: Path,
    host: str,
    port: int,
    controller_port: int,
    log_path: Path,
    partitions: int = 3,
    name: str = "kafka",
    node_id: int = NODE_ID,
    voters: str | None = None,
    overrides: dict[str, str] | None = None,
    heap: str = "1g",
) -> Service:
    """A Service running one KRaft broker+controller whose data lives in home/data.

    Raises:
        StackError: no usable java (see ensure_java).
    """
    java = ensure_java()
    props = home / "server.properties"
    log4j = home / "log4j2.properties"
    data = home / "data"
    format_log = home / "format.log"
    classpath = f"{libs}/*"  # the JVM expands `dir/*` itself; no shell is involved
    log_opts = [f"-Dlog4j2.configurationFile={log4j}"]
    jvm_opts = [f"-Xmx{heap}" if opt.startswith("-Xmx") else opt for opt in BROKER_JVM_OPTS]

    def prepare() -> None:
        home.mkdir(parents=True, exist_ok=True)
        # Rewritten every time so changed ports or partitions take effect on an existing
        # data dir; only the format below is once-only.
        props.write_text(
            server_properties(
                home=home,
                host=host,
                port=port,
                controller_port=controller_port,
                partitions=partitions,
                node_id=node_id,
                voters=voters,
                overrides=overrides,
            )
        )
        log4j.write_text(LOG4J2_PROPERTIES)
        if (data / "meta.properties").is_file():
            return
        # No meta.properties means no broker ever ran here (at most a format killed
        # halfway), so nothing of value is lost; starting empty keeps leftovers of that
        # attempt from mixing with the new format.
        shutil.rmtree(data, ignore_errors=True)
        # Formatting writes meta.properties and the bootstrap metadata (cluster id, node
        # id, feature levels); the broker refuses to start on an unformatted dir. It runs
        # only when meta.properties is missing, so a restart never wipes the topics.
        argv = [
            java,
            *TOOL_JVM_OPTS,
            *log_opts,
            "-cp",
            classpath,
            STORAGE_TOOL_MAIN,
            "format",
            "--config",
            str(props),
            "--cluster-id",
            CLUSTER_ID,
        ]
        # Its own log file: Service.start() moves the broker log aside, which would hide
        # the formatter's output from whoever looks at log_path after a failed start.
        with open(format_log, "wb") as log:
            try:
                result = subprocess.run(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=120,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise StackError(f"kafka storage format failed ({exc}); see {format_log}") from exc
        if result.returncode != 0 or not (data / "meta.properties").is_file():
            raise StackError(
                f"kafka storage format failed (exit {result.returncode}); see {format_log}:\n{tail(format_log)}"
            )

    def ready() -> bool:
        return _broker_answers(host, port)

    return Service(
        name=name,
        argv=[java, *jvm_opts, *log_opts, "-cp", classpath, BROKER_MAIN, str(props)],
        log_path=log_path,
        ready=ready,
        cwd=home,
        prepare=prepare,
        # ~2 s here when idle (~6 s after a SIGKILL: session expiry + log recovery); the
        # margin is for a 2-core machine busy starting the rest of the stack.
        ready_timeout_s=120.0,
        # Kafka's controlled shutdown on SIGTERM flushes logs and writes a clean-shutdown
        # marker, so the next start skips recovery; give it time before the SIGKILL.
        stop_timeout_s=30.0,
    )


def _broker_answers(host: str, port: int) -> bool:
    """True once the broker answers a metadata request; never raises."""
    # A closed port is the common case while the JVM boots; checking it first avoids
    # building a librdkafka client (threads, connection-refused log lines) every 0.2 s.
    if not port_open(host, port):
        return False
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": f"{host}:{port}",
                "socket.timeout.ms": 1000,
                # Keep librdkafka's "connection refused" chatter out of the terminal; a
                # failed probe is expected while the broker starts.
                "log_level": 0,
            }
        )
        metadata = admin.list_topics(timeout=1)
        return len(metadata.brokers) > 0
    except Exception:  # a probe answers yes or no, whatever went wrong
        return False
