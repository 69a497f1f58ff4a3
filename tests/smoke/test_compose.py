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
    for name in ("postgres", "temporal", "temporal-ui", "kafka", "api", "worker", "relay"):
        assert name in services, name
    fields = set(Settings.model_fields)
    for name in ("api", "worker", "relay", "migrate"):
        env = services[name]["environment"]
        for key in env:
            assert key.startswith("LEDGERFLOW_"), key
            assert key.removeprefix("LEDGERFLOW_").lower() in fields, f"{name}: {key} is not a setting"
        assert env["LEDGERFLOW_TEMPORAL_TASK_QUEUE"] == Settings().temporal_task_queue
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["temporal"]["image"].startswith("temporalio/")
