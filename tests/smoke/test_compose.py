"""docker-compose.yml stays valid and consistent with the launcher's settings.

No Docker engine runs here, so this checks what `docker compose config` would catch that
matters to us: it parses, every service the launcher runs is there, and the LEDGERFLOW_*
variables it sets are ones the settings actually read.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from config.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_has_every_part_and_known_settings() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    for name in ("postgres", "temporal", "temporal-ui", "kafka-1", "api", "worker", "relay"):
        assert name in services, name
    fields = set(Settings.model_fields)
    for name in ("api", "worker", "relay", "migrate"):
        env = services[name]["environment"]
        for key in env:
            assert key.startswith("LEDGERFLOW_"), key
            assert key.removeprefix("LEDGERFLOW_").lower() in fields, f"{name}: {key} is not a setting"
        assert env["LEDGERFLOW_TEMPORAL_TASK_QUEUE"] == Settings().temporal_task_queue
    assert services["kafka-1"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["temporal"]["image"].startswith("temporalio/")


def test_compose_matches_the_cluster_profile() -> None:
    """docker-compose.yml promises what `ledgerflow up --profile cluster` runs (stack/cluster.py):
    the same Temporal server version, SQL plugin, databases and shard count, the schema set up by
    temporal-sql-tool from the versioned folders, the same search attributes created through the
    operator API, and as many Kafka nodes with the same replication settings and Kafka version."""
    import re

    from stack import kafka_cluster, temporal_server
    from stack.cluster import PROFILE_FACTS
    from stack.temporal import SEARCH_ATTRIBUTES

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    temporal = services["temporal"]
    assert temporal["image"] == f"temporalio/server:{PROFILE_FACTS['temporal_server_version']}"
    env = temporal["environment"]
    assert env["DB"] == PROFILE_FACTS["temporal_sql_plugin"]
    assert int(env["NUM_HISTORY_SHARDS"]) == PROFILE_FACTS["temporal_num_history_shards"]
    assert (env["DBNAME"], env["VISIBILITY_DBNAME"]) == PROFILE_FACTS["temporal_databases"]

    schema = services["temporal-schema"]
    assert schema["image"].endswith(f":{PROFILE_FACTS['temporal_server_version']}")
    assert schema["environment"]["SQL_PLUGIN"] == temporal_server.SQL_PLUGIN
    script = "\n".join(schema["command"])
    assert "setup-schema -v 0.0" in script and "update-schema -d" in script
    for rel in temporal_server.SCHEMA_DIRS.values():
        # The same versioned folders as the profile (the image keeps them under /etc/temporal).
        assert rel.rsplit("/", 2)[0] in script.replace("$$dir", rel.split("/")[-2])

    # The same Web UI, with the ops portal's public path and same-origin codec.
    from config.settings import TEMPORAL_UI_CODEC_PATH, TEMPORAL_UI_PATH

    ui = services["temporal-ui"]
    assert ui["image"] == f"temporalio/ui:{PROFILE_FACTS['temporal_ui_version']}"
    assert ui["environment"]["TEMPORAL_UI_PUBLIC_PATH"] == TEMPORAL_UI_PATH
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"] == TEMPORAL_UI_CODEC_PATH

    namespace_script = "\n".join(services["temporal-namespace"]["command"])
    listed = re.search(r"for sa in ([^;]+);", namespace_script)
    assert listed is not None
    assert listed.group(1).split() == list(SEARCH_ATTRIBUTES)
    assert set(SEARCH_ATTRIBUTES.values()) == {"Keyword"}
    assert f"--retention {temporal_server.NAMESPACE_RETENTION}" in namespace_script

    pom = (COMPOSE.parent / "infra" / "kafka" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert kafka_version is not None
    nodes = {name: svc for name, svc in services.items() if re.fullmatch(r"kafka-\d+", name)}
    assert len(nodes) == PROFILE_FACTS["kafka_brokers"]
    voters = {svc["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for svc in nodes.values()}
    assert len(voters) == 1 and len(voters.pop().split(",")) == PROFILE_FACTS["kafka_brokers"]
    for name, svc in nodes.items():
        assert svc["image"] == f"apache/kafka:{kafka_version.group(1)}", name
        node_env = svc["environment"]
        assert node_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        # Every override the profile's brokers carry, with the same value.
        for key, value in kafka_cluster.CLUSTER_OVERRIDES.items():
            if key == "auto.leader.rebalance.enable":
                continue  # Kafka's default, spelled out in the profile only
            compose_key = "KAFKA_" + key.upper().replace(".", "_")
            assert str(node_env[compose_key]).lower() == value, (name, key)
    bootstrap = services["api"]["environment"]["LEDGERFLOW_KAFKA_BOOTSTRAP"].split(",")
    assert sorted(b.split(":")[0] for b in bootstrap) == sorted(nodes)
